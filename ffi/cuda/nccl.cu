// NCCL collectives on device buffers (lib/comm/nccl.ts): one process per GPU, ranks joined by a
// 128-byte unique id that the caller exchanges (over MPI). NCCL is loaded at first use with dlopen,
// with the few prototypes declared here, so the library builds with nvcc alone. Search order:
//   1. $LMKIT_NCCL, the path of a libnccl.so.2 (when set, nothing else is tried);
//   2. "libnccl.so.2" through the dynamic loader: LD_LIBRARY_PATH, the ldconfig cache (the
//      system's NCCL, e.g. Debian/Ubuntu libnccl2), the library's rpath (the CUDA emulator's
//      mock, ffi/emu/nccl_mock.cpp, sits beside it);
//   3. the nvidia-nccl wheel that PyTorch brings: <site>/nvidia/nccl/lib/libnccl.so.2 in
//      $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local, /usr/local, /usr and /opt/conda Python folders.
// A failed load is not remembered: a later call searches again.
//
// Every collective is enqueued on the legacy default stream, where every other kernel of this
// library runs (so it follows the kernels that wrote its input and precedes those that read its
// output), and the call returns when the stream has drained: a call that returned 0 has its data
// in place. While it waits it polls ncclCommGetAsyncError; an asynchronous NCCL error or a wait
// longer than the communicator's timeout aborts the communicator (ncclCommAbort), which is then
// unusable ("broken"). Calls on one communicator carry tickets 0, 1, 2, … and run strictly in
// ticket order, one at a time, whatever thread makes them (Deno's nonblocking calls run on
// worker threads). Errors are written to the caller's err buffer, since lk_last_error reads the
// calling thread's message and a nonblocking call's thread is not the caller's.
//
// With `agree` on (lk_nccl_init; lib/comm/nccl.ts turns it on when there are several ranks),
// each call first all-reduces a small header (call number, operation, sizes, root, dtype, and
// whether the rank's own argument checks passed) with ncclMax: ranks that disagree, or a rank
// whose arguments are invalid, fail the call on every rank before any data moves, and the
// communicator stays usable.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <glob.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "internal.cuh"

// ---------------------------------------------------------------- the NCCL API used (nccl.h)
typedef struct ncclComm* ncclComm_t;
typedef struct {
  char internal[128];
} ncclUniqueId;
typedef int ncclResult_t;  // an enum in nccl.h: int-sized
enum { ncclSuccess = 0, ncclInProgress = 7 };
enum { ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclInt64 = 4, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 };
enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };

struct Nccl {
  ncclResult_t (*get_version)(int*);
  ncclResult_t (*get_unique_id)(ncclUniqueId*);
  ncclResult_t (*comm_init_rank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*comm_destroy)(ncclComm_t);
  ncclResult_t (*comm_abort)(ncclComm_t);
  ncclResult_t (*comm_get_async_error)(ncclComm_t, ncclResult_t*);
  const char* (*get_error_string)(ncclResult_t);
  const char* (*get_last_error)(ncclComm_t);  // NCCL 2.13+, optional
  ncclResult_t (*all_reduce)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*broadcast)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*reduce_scatter)(const void*, void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*all_gather)(const void*, void*, size_t, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*send)(const void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*recv)(void*, size_t, int, int, ncclComm_t, cudaStream_t);
  ncclResult_t (*group_start)();
  ncclResult_t (*group_end)();
  int version = 0;
  char path[512] = "";
};
static Nccl N;
static bool nccl_loaded = false;
static std::mutex nccl_mu;

static void* sym(void* h, const char* name, std::string& missing) {
  void* p = dlsym(h, name);
  if (!p && missing.empty()) missing = name;
  return p;
}

// Opens `path` and resolves every entry point; on failure appends why to `tried`.
static bool try_open(const char* path, std::string& tried) {
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!tried.empty()) tried += "; ";
  if (!h) {
    const char* e = dlerror();
    tried += std::string("'") + path + "' (" + (e ? e : "not found") + ")";
    return false;
  }
  std::string missing;
  Nccl n;
  *(void**)&n.get_version = sym(h, "ncclGetVersion", missing);
  *(void**)&n.get_unique_id = sym(h, "ncclGetUniqueId", missing);
  *(void**)&n.comm_init_rank = sym(h, "ncclCommInitRank", missing);
  *(void**)&n.comm_destroy = sym(h, "ncclCommDestroy", missing);
  *(void**)&n.comm_abort = sym(h, "ncclCommAbort", missing);
  *(void**)&n.comm_get_async_error = sym(h, "ncclCommGetAsyncError", missing);
  *(void**)&n.get_error_string = sym(h, "ncclGetErrorString", missing);
  *(void**)&n.all_reduce = sym(h, "ncclAllReduce", missing);
  *(void**)&n.broadcast = sym(h, "ncclBroadcast", missing);
  *(void**)&n.reduce_scatter = sym(h, "ncclReduceScatter", missing);
  *(void**)&n.all_gather = sym(h, "ncclAllGather", missing);
  *(void**)&n.send = sym(h, "ncclSend", missing);
  *(void**)&n.recv = sym(h, "ncclRecv", missing);
  *(void**)&n.group_start = sym(h, "ncclGroupStart", missing);
  *(void**)&n.group_end = sym(h, "ncclGroupEnd", missing);
  *(void**)&n.get_last_error = dlsym(h, "ncclGetLastError");
  if (!missing.empty()) {
    tried += std::string("'") + path + "' (no " + missing + ")";
    return false;
  }
  if (n.get_version(&n.version) != ncclSuccess || n.version < 20700) {
    char v[96];
    snprintf(v, sizeof v, "' (version code %d, older than 2.7, which added ncclSend/ncclRecv)", n.version);
    tried += std::string("'") + path + v;
    return false;
  }
  Dl_info where{};  // the file the loader chose
  snprintf(n.path, sizeof n.path, "%s",
           dladdr((void*)n.get_version, &where) && where.dli_fname ? where.dli_fname : path);
  N = n;
  return true;
}

// The nvidia-nccl wheel's library in the usual Python folders (step 3 of the search).
static bool try_wheels(std::string& tried) {
  std::vector<std::string> roots;
  for (const char* env : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* v = getenv(env); v && *v) roots.push_back(v);
  if (const char* home = getenv("HOME"); home && *home) roots.push_back(std::string(home) + "/.local");
  for (const char* r : {"/usr/local", "/usr", "/opt/conda"}) roots.push_back(r);
  for (const std::string& root : roots)
    for (const char* site : {"site-packages", "dist-packages"}) {
      const std::string pattern = root + "/lib/python3*/" + site + "/nvidia/nccl/lib/libnccl.so.2";
      glob_t g;
      if (glob(pattern.c_str(), 0, nullptr, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
          if (try_open(g.gl_pathv[i], tried)) {
            globfree(&g);
            return true;
          }
      }
      globfree(&g);
    }
  return false;
}

static int32_t need_nccl(const char* fn) {
  std::lock_guard<std::mutex> g(nccl_mu);
  if (nccl_loaded) return LK_OK;
  std::string tried;
  const char* env = getenv("LMKIT_NCCL");
  bool ok;
  if (env && *env) {
    ok = try_open(env, tried);
    if (!ok) tried = "LMKIT_NCCL=" + tried;
  } else {
    ok = try_open("libnccl.so.2", tried) || try_wheels(tried);
    if (!ok) tried += "; no nvidia/nccl/lib/libnccl.so.2 in the Python folders searched";
  }
  if (!ok)
    return fail(LK_EBACKEND,
                "%s: NCCL could not be loaded: tried %s; install NCCL 2.7 or later (libnccl.so.2) or PyTorch's "
                "nvidia-nccl wheel, or set LMKIT_NCCL to the path of libnccl.so.2",
                fn, tried.c_str());
  nccl_loaded = true;
  return LK_OK;
}

static const char* nccl_error(ncclResult_t r) {
  const char* s = N.get_error_string ? N.get_error_string(r) : nullptr;
  return s && *s ? s : "unknown NCCL error";
}

// NCCL's own last message for comm (or the last init failure), when the library has one.
static const char* nccl_detail(ncclComm_t c) {
  const char* s = N.get_last_error ? N.get_last_error(c) : nullptr;
  return s && *s ? s : "no further detail";
}

extern "C" int32_t lk_nccl_library(char* buf, int32_t cap) {
  if (cap <= 0) return fail(LK_EARG, "lk_nccl_library: cap is %d, expected > 0", cap);
  if (int32_t st = need_nccl("lk_nccl_library")) return st;
  const int v = N.version, major = v / 10000, minor = v / 100 % 100, patch = v % 100;
  snprintf(buf, (size_t)cap, "{\"path\":\"%s\",\"version\":\"%d.%d.%d\",\"code\":%d}", N.path, major, minor, patch, v);
  return LK_OK;
}

extern "C" int32_t lk_nccl_get_unique_id(uint8_t* out, double out_len) {
  const char* fn = "lk_nccl_get_unique_id";
  if (out_len != (double)sizeof(ncclUniqueId))
    return fail(LK_ESHAPE, "%s: out holds %.0f bytes, expected %zu", fn, out_len, sizeof(ncclUniqueId));
  if (int32_t st = need_nccl(fn)) return st;
  ncclUniqueId id;
  if (ncclResult_t r = N.get_unique_id(&id))
    return fail(LK_EBACKEND, "%s: ncclGetUniqueId failed: %s (%s)", fn, nccl_error(r), nccl_detail(nullptr));
  memcpy(out, id.internal, sizeof id.internal);
  return LK_OK;
}

// ---------------------------------------------------------------- communicators
struct Comm {
  ncclComm_t nc = nullptr;
  int rank = 0, nranks = 1;
  bool agree = false;
  double timeout_s = 600;
  void* scratch = nullptr;  // device: the agreement header (2 × HDR int64)
  std::mutex mu;
  std::condition_variable cv;
  double next = 0;  // the ticket whose turn it is
  bool closed = false, broken = false;
  char why[400] = "";  // what broke it
};
static std::vector<Comm*> comms;  // id c ↔ comms[c - 1]; never freed (a late call may still look)
static std::mutex comms_mu;

static Comm* find_comm(int32_t id) {
  std::lock_guard<std::mutex> g(comms_mu);
  return id >= 1 && (size_t)id <= comms.size() ? comms[id - 1] : nullptr;
}

extern "C" int32_t lk_nccl_init(const uint8_t* id, double id_len, int32_t nranks, int32_t rank, double timeout_s,
                                int32_t agree, int32_t* comm_out, double out_len) {
  const char* fn = "lk_nccl_init";
  if (id_len != (double)sizeof(ncclUniqueId))
    return fail(LK_ESHAPE, "%s: the unique id holds %.0f bytes, expected %zu", fn, id_len, sizeof(ncclUniqueId));
  if (nranks < 1) return fail(LK_EARG, "%s: nranks is %d, expected >= 1", fn, nranks);
  if (rank < 0 || rank >= nranks) return fail(LK_EARG, "%s: rank %d is not in 0 … %d", fn, rank, nranks - 1);
  if (!(timeout_s > 0) || !std::isfinite(timeout_s))
    return fail(LK_EARG, "%s: timeout %g s, expected a positive number", fn, timeout_s);
  if (agree != 0 && agree != 1) return fail(LK_EARG, "%s: agree is %d, expected 0 or 1", fn, agree);
  if (!(out_len >= 1)) return fail(LK_ESHAPE, "%s: comm_out holds %.0f elements, expected 1", fn, out_len);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) devices = 0;
  cudaGetLastError();
  if (devices < 1) return fail(LK_EBACKEND, "%s: no CUDA device is visible, and NCCL needs one per rank", fn);
  if (int32_t st = need_nccl(fn)) return st;
  Comm* c = new Comm;
  c->rank = rank;
  c->nranks = nranks;
  c->agree = agree == 1;
  c->timeout_s = timeout_s;
  if (cudaMalloc(&c->scratch, 16 * sizeof(int64_t)) != cudaSuccess) {
    cudaGetLastError();
    delete c;
    return fail(LK_ENOMEM, "%s: cannot allocate 128 bytes of device memory", fn);
  }
  ncclUniqueId uid;
  memcpy(uid.internal, id, sizeof uid.internal);
  if (ncclResult_t r = N.comm_init_rank(&c->nc, nranks, uid, rank)) {
    cudaFree(c->scratch);
    delete c;
    return fail(LK_EBACKEND, "%s: ncclCommInitRank (rank %d of %d) failed: %s (%s)", fn, rank, nranks,
                nccl_error(r), nccl_detail(nullptr));
  }
  std::lock_guard<std::mutex> g(comms_mu);
  comms.push_back(c);
  comm_out[0] = (int32_t)comms.size();
  return LK_OK;
}

// out: rank, nranks, broken (0/1), closed (0/1), agree (0/1), the next ticket
extern "C" int32_t lk_nccl_info(int32_t comm, double* out, double out_len) {
  const char* fn = "lk_nccl_info";
  if (!(out_len >= 6)) return fail(LK_ESHAPE, "%s: out holds %.0f elements, expected 6", fn, out_len);
  Comm* c = find_comm(comm);
  if (!c) return fail(LK_EHANDLE, "%s: %d is not an NCCL communicator", fn, comm);
  std::lock_guard<std::mutex> g(c->mu);
  out[0] = c->rank;
  out[1] = c->nranks;
  out[2] = c->broken;
  out[3] = c->closed;
  out[4] = c->agree;
  out[5] = c->next;
  return LK_OK;
}

// ---------------------------------------------------------------- one call's turn
// Copies the calling thread's message into the caller's buffer on failure.
static int32_t report(int32_t st, char* err, int32_t cap) {
  if (st != LK_OK && err && cap > 0) lk_last_error(err, cap);
  return st;
}

// Holds call `ticket` of c until it returns; hands the turn to the next ticket however it ends.
struct Turn {
  Comm* c = nullptr;
  ~Turn() {
    if (!c) return;
    std::lock_guard<std::mutex> g(c->mu);
    c->next += 1;
    c->cv.notify_all();
  }
};

static int32_t take_turn(const char* fn, Comm* c, double ticket, Turn& turn) {
  if (!(ticket >= 0) || ticket != std::floor(ticket) || ticket > 9007199254740992.0)
    return fail(LK_EARG, "%s: ticket %g is not an integer >= 0", fn, ticket);
  std::unique_lock<std::mutex> g(c->mu);
  if (ticket < c->next) return fail(LK_EARG, "%s: ticket %.0f was already used (next is %.0f)", fn, ticket, c->next);
  const double waited = c->timeout_s;
  if (!c->cv.wait_for(g, std::chrono::duration<double>(waited), [&] { return c->next == ticket; }))
    return fail(LK_EARG, "%s: call #%.0f waited %g s for call #%.0f, which was never made", fn, ticket, waited, c->next);
  turn.c = c;
  return LK_OK;
}

// Marks c broken (aborting NCCL's communicator) and fails with LK_EBACKEND.
static int32_t broke(const char* fn, Comm* c, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static int32_t broke(const char* fn, Comm* c, const char* fmt, ...) {
  char what[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (c->nc) N.comm_abort(c->nc);
  c->nc = nullptr;
  c->broken = true;
  snprintf(c->why, sizeof c->why, "%s", what);
  return fail(LK_EBACKEND, "%s (rank %d of %d): %s; the NCCL communicator is now unusable", fn, c->rank, c->nranks,
              what);
}

// A failed enqueue (synchronous NCCL error): NCCL's state is unknown afterwards, so it breaks c.
static int32_t enqueue_failed(const char* fn, Comm* c, const char* call, ncclResult_t r) {
  return broke(fn, c, "%s failed: %s (%s)", call, nccl_error(r), nccl_detail(c->nc));
}

// Waits until the legacy stream has drained, polling NCCL's asynchronous error and the timeout.
static int32_t wait_done(const char* fn, Comm* c) {
  const auto t0 = std::chrono::steady_clock::now();
  for (long spin = 0;; spin++) {
    ncclResult_t ae = ncclSuccess;
    if (ncclResult_t r = N.comm_get_async_error(c->nc, &ae)) ae = r;
    if (ae != ncclSuccess && ae != ncclInProgress)
      return broke(fn, c, "NCCL reported an asynchronous error: %s (%s)", nccl_error(ae), nccl_detail(c->nc));
    const cudaError_t q = cudaStreamQuery(0);
    if (q == cudaSuccess) return LK_OK;
    if (q != cudaErrorNotReady) {
      cudaGetLastError();
      return broke(fn, c, "the stream failed: %s", cudaGetErrorString(q));
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > c->timeout_s)
      return broke(fn, c, "the call did not complete within %g s (a rank is missing, stopped, or at another call)",
                   c->timeout_s);
    if (spin < 2000) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// ---------------------------------------------------------------- argument checks
static const size_t esz[] = {4, 8, 4, 1, 2};
static const char* dtname[] = {"f32", "f64", "i32", "u8", "bf16"};
static const int nccl_type[] = {ncclFloat32, ncclFloat64, ncclInt32, ncclUint8, ncclBfloat16};

// A range of a device buffer: handle h, elements [offset, offset + count).
struct Range {
  char* ptr = nullptr;  // at offset
  int dtype = -1;
  double count = 0;
  size_t bytes() const { return (size_t)count * esz[dtype]; }
};

static int32_t range(const char* fn, const char* what, int32_t h, double offset, double count, Range* out) {
  if (!(offset >= 0) || offset != std::floor(offset) || offset > 9007199254740992.0)
    return fail(LK_EARG, "%s: %s offset %g is not an integer >= 0", fn, what, offset);
  if (!(count >= 0) || count != std::floor(count) || count > 9007199254740992.0)
    return fail(LK_EARG, "%s: %s count %g is not an integer >= 0", fn, what, count);
  void* p = nullptr;
  int dt = -1;
  for (int d = 0; d < 5 && dt < 0; d++) {  // the buffer's dtype: the one `get` accepts
    const int32_t st = get(fn, what, h, d, 0, &p);
    if (st == LK_OK) dt = d;
    else if (st != LK_ESHAPE) return st;  // not a live buffer
  }
  if (dt < 0) return fail(LK_EHANDLE, "%s: %s is handle %d, which is not a live device buffer", fn, what, h);
  if (int32_t st = get(fn, what, h, dt, offset + count, &p)) return st;
  out->ptr = (char*)p + (size_t)offset * esz[dt];
  out->dtype = dt;
  out->count = count;
  return LK_OK;
}

static bool overlap(const Range& a, const Range& b) {
  return a.count > 0 && b.count > 0 && a.ptr < b.ptr + b.bytes() && b.ptr < a.ptr + a.bytes();
}

static int32_t same_dtype(const char* fn, const Range& s, const Range& r) {
  if (s.dtype != r.dtype)
    return fail(LK_ESHAPE, "%s: send holds %s but recv holds %s, expected the same element type", fn, dtname[s.dtype],
                dtname[r.dtype]);
  return LK_OK;
}

static int32_t reducible(const char* fn, const char* what, const Range& b, int32_t op) {
  if (b.dtype != DT_F32 && b.dtype != DT_F64 && b.dtype != DT_BF16)
    return fail(LK_ESHAPE, "%s: %s holds %s, expected f32, f64 or bf16 for a reduction", fn, what, dtname[b.dtype]);
  if (op < ncclSum || op > ncclAvg) return fail(LK_EARG, "%s: op %d, expected 0 (sum) … 4 (avg)", fn, op);
  if ((op == ncclAvg || b.dtype == DT_BF16) && N.version < 21000)
    return fail(LK_EARG, "%s: %s needs NCCL 2.10 or later, and %s is version code %d", fn,
                op == ncclAvg ? "op avg" : "bf16", N.path, N.version);
  return LK_OK;
}

// ---------------------------------------------------------------- agreement between ranks
enum Op { OP_ALL_REDUCE = 1, OP_REDUCE_SCATTER, OP_ALL_GATHER, OP_BROADCAST, OP_ALL_TO_ALL, OP_BARRIER, OP_CLOSE };
static const char* opname[] = {"", "all-reduce", "reduce-scatter", "all-gather", "broadcast", "all-to-all", "barrier", "close"};
enum { H_TICKET, H_OP, H_SEND, H_RECV, H_ROOT, H_DTYPE, H_RED, H_BAD, HDR };

// All-reduces the header (max of h and of −h: every field's maximum and minimum over ranks) and
// fails, on every rank alike, when a rank's checks failed (`local` is its status) or the ranks
// disagree. Returns `local` on the rank whose checks failed, with its own message.
static int32_t agree(const char* fn, Comm* c, int64_t* h, int32_t local) {
  h[H_BAD] = local == LK_OK ? -1 : c->rank;
  int64_t both[2 * HDR], back[2 * HDR];
  for (int i = 0; i < HDR; i++) both[i] = h[i], both[HDR + i] = -h[i];
  if (cudaMemcpy(c->scratch, both, sizeof both, cudaMemcpyHostToDevice) != cudaSuccess) {
    cudaGetLastError();
    return broke(fn, c, "cannot copy the call's header to the device");
  }
  if (ncclResult_t r = N.all_reduce(c->scratch, c->scratch, 2 * HDR, ncclInt64, ncclMax, c->nc, 0))
    return enqueue_failed(fn, c, "ncclAllReduce (the call's header)", r);
  if (int32_t st = wait_done(fn, c)) return st;
  if (cudaMemcpy(back, c->scratch, sizeof back, cudaMemcpyDeviceToHost) != cudaSuccess) {
    cudaGetLastError();
    return broke(fn, c, "cannot copy the call's header back from the device");
  }
  if (local != LK_OK) return local;
  const auto lo = [&](int i) { return -back[HDR + i]; };
  const auto hi = [&](int i) { return back[i]; };
  if (hi(H_BAD) >= 0)
    return fail(LK_EARG, "%s: rank %lld passed an invalid argument to this %s (its own error says which); no data moved",
                fn, (long long)hi(H_BAD), opname[h[H_OP]]);
  if (lo(H_TICKET) != hi(H_TICKET) || lo(H_OP) != hi(H_OP))
    return fail(LK_EARG, "%s: the ranks are at different calls (call #%lld to #%lld; this rank: #%lld, %s); no data moved",
                fn, (long long)lo(H_TICKET), (long long)hi(H_TICKET), (long long)h[H_TICKET], opname[h[H_OP]]);
  static const char* field[] = {"", "", "send count", "recv count", "root", "element type", "reduction"};
  for (int i = H_SEND; i < H_BAD; i++)
    if (lo(i) != hi(i))
      return fail(i == H_ROOT || i == H_RED ? LK_EARG : LK_ESHAPE,
                  "%s: the ranks passed different %ss to this %s (from %lld to %lld; this rank %lld); no data moved", fn,
                  field[i], opname[h[H_OP]], (long long)lo(i), (long long)hi(i), (long long)h[i]);
  return LK_OK;
}

// Runs one call: the comm and its turn, the rank's own checks (`check`, which fills the header),
// the agreement when on, then `move` (the NCCL calls) and the wait. Errors go to err.
template <typename Check, typename Move>
static int32_t call(const char* fn, int32_t comm, double ticket, Op op, char* err, int32_t cap, Check check,
                    Move move) {
  if (!err || cap < 2) return fail(LK_EARG, "%s: the error buffer holds %d bytes, expected at least 2", fn, cap);
  Comm* c = find_comm(comm);
  if (!c) return report(fail(LK_EHANDLE, "%s: %d is not an NCCL communicator", fn, comm), err, cap);
  Turn turn;
  if (int32_t st = take_turn(fn, c, ticket, turn)) return report(st, err, cap);
  if (c->closed) return report(fail(LK_EARG, "%s: the NCCL communicator is closed", fn), err, cap);
  if (c->broken)
    return report(fail(LK_EBACKEND, "%s: the NCCL communicator is unusable after an earlier failure: %s", fn, c->why),
                  err, cap);
  int64_t h[HDR] = {0};
  h[H_TICKET] = (int64_t)ticket;
  h[H_OP] = op;
  int32_t st = check(c, h);
  if (c->agree || op == OP_BARRIER) st = agree(fn, c, h, st);
  if (st != LK_OK) return report(st, err, cap);
  st = move(c);
  if (st == LK_OK && !c->broken) st = wait_done(fn, c);
  return report(st, err, cap);
}

// ---------------------------------------------------------------- collectives
extern "C" int32_t lk_nccl_all_reduce(int32_t comm, double ticket, int32_t buf, double offset, double count, int32_t op,
                                      char* err, int32_t cap) {
  const char* fn = "lk_nccl_all_reduce";
  Range b;
  return call(
      fn, comm, ticket, OP_ALL_REDUCE, err, cap,
      [&](Comm*, int64_t* h) -> int32_t {
        h[H_SEND] = (int64_t)count, h[H_RED] = op;
        if (int32_t st = range(fn, "buf", buf, offset, count, &b)) return st;
        h[H_DTYPE] = b.dtype;
        return reducible(fn, "buf", b, op);
      },
      [&](Comm* c) -> int32_t {
        if (b.count == 0) return LK_OK;
        if (ncclResult_t r = N.all_reduce(b.ptr, b.ptr, (size_t)b.count, nccl_type[b.dtype], op, c->nc, 0))
          return enqueue_failed(fn, c, "ncclAllReduce", r);
        return LK_OK;
      });
}

// recv (rcount elements) = this rank's block of the reduction of every rank's send (nranks × rcount)
extern "C" int32_t lk_nccl_reduce_scatter(int32_t comm, double ticket, int32_t send, double soff, double scount,
                                          int32_t recv, double roff, double rcount, int32_t op, char* err, int32_t cap) {
  const char* fn = "lk_nccl_reduce_scatter";
  Range s, r;
  return call(
      fn, comm, ticket, OP_REDUCE_SCATTER, err, cap,
      [&](Comm* c, int64_t* h) -> int32_t {
        h[H_SEND] = (int64_t)scount, h[H_RECV] = (int64_t)rcount, h[H_RED] = op;
        if (int32_t st = range(fn, "send", send, soff, scount, &s)) return st;
        if (int32_t st = range(fn, "recv", recv, roff, rcount, &r)) return st;
        h[H_DTYPE] = s.dtype;
        if (int32_t st = same_dtype(fn, s, r)) return st;
        if (int32_t st = reducible(fn, "send", s, op)) return st;
        if (scount != rcount * c->nranks)
          return fail(LK_ESHAPE, "%s: send holds %.0f elements, expected recv's %.0f × %d ranks = %.0f", fn, scount,
                      rcount, c->nranks, rcount * c->nranks);
        if (overlap(s, r) && r.ptr != s.ptr + (size_t)c->rank * r.bytes())
          return fail(LK_EARG, "%s: send and recv overlap, and recv is not this rank's block of send (in place)", fn);
        return LK_OK;
      },
      [&](Comm* c) -> int32_t {
        if (r.count == 0) return LK_OK;
        if (ncclResult_t e = N.reduce_scatter(s.ptr, r.ptr, (size_t)r.count, nccl_type[s.dtype], op, c->nc, 0))
          return enqueue_failed(fn, c, "ncclReduceScatter", e);
        return LK_OK;
      });
}

// recv (nranks × scount elements) = every rank's send, rank j's at block j
extern "C" int32_t lk_nccl_all_gather(int32_t comm, double ticket, int32_t send, double soff, double scount,
                                      int32_t recv, double roff, double rcount, char* err, int32_t cap) {
  const char* fn = "lk_nccl_all_gather";
  Range s, r;
  return call(
      fn, comm, ticket, OP_ALL_GATHER, err, cap,
      [&](Comm* c, int64_t* h) -> int32_t {
        h[H_SEND] = (int64_t)scount, h[H_RECV] = (int64_t)rcount;
        if (int32_t st = range(fn, "send", send, soff, scount, &s)) return st;
        if (int32_t st = range(fn, "recv", recv, roff, rcount, &r)) return st;
        h[H_DTYPE] = s.dtype;
        if (int32_t st = same_dtype(fn, s, r)) return st;
        if (rcount != scount * c->nranks)
          return fail(LK_ESHAPE, "%s: recv holds %.0f elements, expected send's %.0f × %d ranks = %.0f", fn, rcount,
                      scount, c->nranks, scount * c->nranks);
        if (overlap(s, r) && s.ptr != r.ptr + (size_t)c->rank * s.bytes())
          return fail(LK_EARG, "%s: send and recv overlap, and send is not this rank's block of recv (in place)", fn);
        return LK_OK;
      },
      [&](Comm* c) -> int32_t {
        if (s.count == 0) return LK_OK;
        if (ncclResult_t e = N.all_gather(s.ptr, r.ptr, (size_t)s.count, nccl_type[s.dtype], c->nc, 0))
          return enqueue_failed(fn, c, "ncclAllGather", e);
        return LK_OK;
      });
}

// in place: every rank's buf range becomes root's
extern "C" int32_t lk_nccl_broadcast(int32_t comm, double ticket, int32_t buf, double offset, double count,
                                     int32_t root, char* err, int32_t cap) {
  const char* fn = "lk_nccl_broadcast";
  Range b;
  return call(
      fn, comm, ticket, OP_BROADCAST, err, cap,
      [&](Comm* c, int64_t* h) -> int32_t {
        h[H_SEND] = (int64_t)count, h[H_ROOT] = root;
        if (int32_t st = range(fn, "buf", buf, offset, count, &b)) return st;
        h[H_DTYPE] = b.dtype;
        if (root < 0 || root >= c->nranks) return fail(LK_EARG, "%s: root %d is not a rank of 0 … %d", fn, root, c->nranks - 1);
        return LK_OK;
      },
      [&](Comm* c) -> int32_t {
        if (b.count == 0) return LK_OK;
        if (ncclResult_t e = N.broadcast(b.ptr, b.ptr, (size_t)b.count, nccl_type[b.dtype], root, c->nc, 0))
          return enqueue_failed(fn, c, "ncclBroadcast", e);
        return LK_OK;
      });
}

// send and recv hold nranks blocks of count/nranks elements: block j of send goes to rank j, and
// block j of recv comes from rank j (one group of ncclSend/ncclRecv pairs)
extern "C" int32_t lk_nccl_all_to_all(int32_t comm, double ticket, int32_t send, double soff, double scount,
                                      int32_t recv, double roff, double rcount, char* err, int32_t cap) {
  const char* fn = "lk_nccl_all_to_all";
  Range s, r;
  return call(
      fn, comm, ticket, OP_ALL_TO_ALL, err, cap,
      [&](Comm* c, int64_t* h) -> int32_t {
        h[H_SEND] = (int64_t)scount, h[H_RECV] = (int64_t)rcount;
        if (int32_t st = range(fn, "send", send, soff, scount, &s)) return st;
        if (int32_t st = range(fn, "recv", recv, roff, rcount, &r)) return st;
        h[H_DTYPE] = s.dtype;
        if (int32_t st = same_dtype(fn, s, r)) return st;
        if (scount != rcount)
          return fail(LK_ESHAPE, "%s: send holds %.0f elements and recv %.0f, expected the same", fn, scount, rcount);
        if (std::fmod(scount, c->nranks) != 0)
          return fail(LK_ESHAPE, "%s: send holds %.0f elements, expected a multiple of the %d ranks", fn, scount,
                      c->nranks);
        if (overlap(s, r)) return fail(LK_EARG, "%s: send and recv overlap, expected separate ranges", fn);
        return LK_OK;
      },
      [&](Comm* c) -> int32_t {
        if (s.count == 0) return LK_OK;
        const size_t n = (size_t)s.count / c->nranks, bytes = n * esz[s.dtype];
        const int t = nccl_type[s.dtype];
        if (ncclResult_t e = N.group_start()) return enqueue_failed(fn, c, "ncclGroupStart", e);
        for (int j = 0; j < c->nranks; j++) {
          ncclResult_t e = N.send(s.ptr + j * bytes, n, t, j, c->nc, 0);
          if (!e) e = N.recv(r.ptr + j * bytes, n, t, j, c->nc, 0);
          if (e) {
            N.group_end();
            return enqueue_failed(fn, c, "ncclSend/ncclRecv", e);
          }
        }
        if (ncclResult_t e = N.group_end()) return enqueue_failed(fn, c, "ncclGroupEnd", e);
        return LK_OK;
      });
}

// returns once every rank has called it (the header all-reduce, which also checks the order)
extern "C" int32_t lk_nccl_barrier(int32_t comm, double ticket, char* err, int32_t cap) {
  return call(
      "lk_nccl_barrier", comm, ticket, OP_BARRIER, err, cap, [](Comm*, int64_t*) -> int32_t { return LK_OK; },
      [](Comm*) -> int32_t { return LK_OK; });
}

// Waits for the earlier calls, then destroys the communicator (only marks a broken one closed).
// Not collective in NCCL's sense; the second call does nothing.
extern "C" int32_t lk_nccl_destroy(int32_t comm, double ticket, char* err, int32_t cap) {
  const char* fn = "lk_nccl_destroy";
  if (!err || cap < 2) return fail(LK_EARG, "%s: the error buffer holds %d bytes, expected at least 2", fn, cap);
  Comm* c = find_comm(comm);
  if (!c) return report(fail(LK_EHANDLE, "%s: %d is not an NCCL communicator", fn, comm), err, cap);
  Turn turn;
  if (int32_t st = take_turn(fn, c, ticket, turn)) return report(st, err, cap);
  if (c->closed) return LK_OK;
  c->closed = true;
  if (c->scratch) cudaFree(c->scratch);
  c->scratch = nullptr;
  if (!c->nc) return LK_OK;  // broken: aborted already
  ncclComm_t nc = c->nc;
  c->nc = nullptr;
  if (ncclResult_t r = N.comm_destroy(nc))
    return report(fail(LK_EBACKEND, "%s: ncclCommDestroy failed: %s", fn, nccl_error(r)), err, cap);
  return LK_OK;
}
