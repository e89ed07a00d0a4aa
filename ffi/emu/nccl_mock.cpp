// A mock NCCL (libnccl.so.2) for the CUDA emulator: a world of one rank, where every collective is
// a copy (a communicator of several ranks, one per process, can be made and destroyed, so that
// the unique id's way over MPI is tested, but moves no data), with the checks a first GPU run would otherwise make the hard way. It refuses (with a
// line on stderr and NCCL's status) a communicator that was never made or was destroyed or
// aborted, a unique id it did not issue (so an id garbled on its way to ncclCommInitRank shows),
// a rank outside 0 … nranks − 1, an unknown data type or reduction, a buffer range outside one device
// allocation, overlapping send and recv ranges other than NCCL's in-place forms, a stream other
// than the legacy default stream (lmkit's convention), ncclSend/ncclRecv outside a group or
// unmatched at ncclGroupEnd, unbalanced ncclGroupStart/End, and destroying a communicator inside
// a group. Every call is appended to a log (emu_nccl_log) that tests read through Deno.dlopen of
// this file, and emu_nccl_inject makes the next collective fail: 1 at once
// (ncclUnhandledCudaError), 2 asynchronously (ncclCommGetAsyncError reports ncclRemoteError),
// 3 by never completing (the emulator's stream stays busy until ncclCommAbort); 4 makes the next
// collective start 200 ms late (a slow peer), which a later call must not overtake.
// Built by ffi/emu/build.sh as libnccl.so.2 beside the emulated liblmkit_cuda.so.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_emu.h"

#define EXPORT extern "C" __attribute__((visibility("default")))
enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
};
typedef struct {
  char internal[128];
} ncclUniqueId;

struct MockComm {
  int nranks, rank;
  bool dead = false;  // destroyed or aborted
  int async_error = ncclSuccess;
};
struct P2P {
  bool send;
  const void* ptr;
  size_t count;
  int type, peer;
  MockComm* comm;
};

static std::mutex mu;  // one call at a time: the log and the state below
static std::string log_text;
static std::set<MockComm*> comms;
static std::vector<P2P> group;  // the sends and receives of the open group
static int group_depth = 0;
static int inject = 0;
static std::atomic<int> delay_next{0};  // ms the next collective waits before it starts (inject 4)
static unsigned issued = 0;  // unique ids handed out
static char last_error[256] = "";

static void logf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf(const char* fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  log_text += line;
  log_text += '\n';
}

static int refuse(int code, const char* fn, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(int code, const char* fn, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char what[200];
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(last_error, sizeof last_error, "nccl mock: %s: %s", fn, what);
  fprintf(stderr, "%s\n", last_error);
  logf("%s REFUSED: %s", fn, what);
  return code;
}

static size_t type_size(int t) {
  switch (t) {
    case 0: case 1: return 1;             // int8, uint8
    case 2: case 3: case 7: return 4;     // int32, uint32, float32
    case 4: case 5: case 8: return 8;     // int64, uint64, float64
    case 6: case 9: return 2;             // float16, bfloat16
  }
  return 0;
}
static const char* type_name(int t) {
  static const char* names[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64", "bfloat16"};
  return t >= 0 && t <= 9 ? names[t] : "?";
}
static const char* op_name(int op) {
  static const char* names[] = {"sum", "prod", "max", "min", "avg"};
  return op >= 0 && op <= 4 ? names[op] : "?";
}

#define CHECK_COMM(fn, c)                                                                   \
  if (!comms.count(c)) return refuse(ncclInvalidArgument, fn, "comm %p was never made", (void*)c); \
  if (c->dead) return refuse(ncclInvalidArgument, fn, "comm %p was destroyed or aborted", (void*)c); \
  if (c->nranks != 1 && strcmp(fn, "ncclCommDestroy"))                                   \
    return refuse(ncclInvalidUsage, fn, "the mock moves data only in a world of one rank (nranks %d)", c->nranks);
#define CHECK_TYPE(fn, t) \
  if (!type_size(t)) return refuse(ncclInvalidArgument, fn, "data type %d is not an ncclDataType_t", t);
#define CHECK_STREAM(fn, s) \
  if (s) return refuse(ncclInvalidArgument, fn, "stream %p, expected the legacy default stream (0)", (void*)s);
#define CHECK_RANGE(fn, what, p, bytes)                                                                   \
  if ((bytes) > 0 && !emu_is_device(p, bytes))                                                          \
    return refuse(ncclInvalidArgument, fn, "%s (%p, %zu bytes) is not inside one device allocation", what, \
                  (const void*)(p), (size_t)(bytes));

static bool overlap(const void* a, size_t na, const void* b, size_t nb) {
  const char *x = (const char*)a, *y = (const char*)b;
  return na > 0 && nb > 0 && x < y + nb && y < x + na;
}

// the injected failure of this collective, if any (consumed)
static int injected(MockComm* c) {
  const int k = inject;
  inject = 0;
  if (k == 1) return ncclUnhandledCudaError;
  if (k == 2) c->async_error = ncclRemoteError;
  if (k == 3) emu_stream_stall(1);
  return ncclSuccess;
}

// ---------------------------------------------------------------- test hooks
EXPORT int emu_nccl_log(char* buf, int cap) {
  std::lock_guard<std::mutex> g(mu);
  if (cap > 0) snprintf(buf, (size_t)cap, "%s", log_text.c_str());
  return (int)log_text.size();
}
EXPORT void emu_nccl_log_clear() {
  std::lock_guard<std::mutex> g(mu);
  log_text.clear();
}
EXPORT void emu_nccl_inject(int kind) {
  std::lock_guard<std::mutex> g(mu);
  if (kind == 4) delay_next = 200;
  else inject = kind;
}
// inject 4: the next collective waits 200 ms before it starts (outside the lock), so that a call
// issued after it would overtake it unless the caller keeps the order
static void maybe_delay() {
  if (int ms = delay_next.exchange(0)) usleep((useconds_t)ms * 1000);
}
// communicators made and not destroyed or aborted (leak checks)
EXPORT int emu_nccl_live_comms() {
  std::lock_guard<std::mutex> g(mu);
  int n = 0;
  for (MockComm* c : comms) n += !c->dead;
  return n;
}

// ---------------------------------------------------------------- setup
EXPORT int ncclGetVersion(int* v) {
  *v = 22105;  // 2.21.5
  return ncclSuccess;
}
EXPORT const char* ncclGetErrorString(int r) {
  switch (r) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
  }
  return "unknown result code";
}
EXPORT const char* ncclGetLastError(void*) { return last_error; }

// the id: "lmkit-nccl-mock" + serial + a checksum over the 128 bytes
static unsigned id_sum(const ncclUniqueId& id) {
  unsigned h = 2166136261u;
  for (int i = 0; i < 124; i++) h = (h ^ (unsigned char)id.internal[i]) * 16777619u;
  return h;
}
EXPORT int ncclGetUniqueId(ncclUniqueId* id) {
  std::lock_guard<std::mutex> g(mu);
  memset(id, 0, sizeof *id);
  snprintf(id->internal, 32, "lmkit-nccl-mock %u.%d", ++issued, (int)getpid());
  for (int i = 32; i < 124; i++) id->internal[i] = (char)(i * 37 + issued);
  const unsigned s = id_sum(*id);
  memcpy(id->internal + 124, &s, 4);
  logf("ncclGetUniqueId(#%s)", id->internal + 16);
  return ncclSuccess;
}
EXPORT int ncclCommInitRank(MockComm** out, int nranks, ncclUniqueId id, int rank) {
  std::lock_guard<std::mutex> g(mu);
  const char* fn = "ncclCommInitRank";
  unsigned s;
  memcpy(&s, id.internal + 124, 4);
  if (strncmp(id.internal, "lmkit-nccl-mock ", 16) != 0 || s != id_sum(id))
    return refuse(ncclInvalidArgument, fn, "the unique id is not one ncclGetUniqueId issued (garbled in transit?)");
  if (nranks < 1 || rank < 0 || rank >= nranks) return refuse(ncclInvalidArgument, fn, "rank %d of %d", rank, nranks);
  MockComm* c = new MockComm{nranks, rank};
  comms.insert(c);
  *out = c;
  logf("ncclCommInitRank(nranks=%d, rank=%d, id=#%s)", nranks, rank, id.internal + 16);
  return ncclSuccess;
}
EXPORT int ncclCommDestroy(MockComm* c) {
  std::lock_guard<std::mutex> g(mu);
  const char* fn = "ncclCommDestroy";
  CHECK_COMM(fn, c);
  if (group_depth) return refuse(ncclInvalidUsage, fn, "inside a group (ncclGroupStart without ncclGroupEnd)");
  c->dead = true;
  logf("ncclCommDestroy");
  return ncclSuccess;
}
EXPORT int ncclCommAbort(MockComm* c) {
  std::lock_guard<std::mutex> g(mu);
  if (!comms.count(c)) return refuse(ncclInvalidArgument, "ncclCommAbort", "comm %p was never made", (void*)c);
  c->dead = true;
  emu_stream_stall(0);
  logf("ncclCommAbort");
  return ncclSuccess;
}
EXPORT int ncclCommGetAsyncError(MockComm* c, int* err) {
  std::lock_guard<std::mutex> g(mu);
  if (!comms.count(c)) return refuse(ncclInvalidArgument, "ncclCommGetAsyncError", "comm %p was never made", (void*)c);
  *err = c->async_error;
  return ncclSuccess;
}

// ---------------------------------------------------------------- collectives (world of one)
EXPORT int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, MockComm* c, cudaStream_t s) {
  maybe_delay();
  std::lock_guard<std::mutex> g(mu);
  const char* fn = "ncclAllReduce";
  CHECK_COMM(fn, c);
  CHECK_TYPE(fn, type);
  CHECK_STREAM(fn, s);
  if (op < 0 || op > 4) return refuse(ncclInvalidArgument, fn, "reduction %d is not an ncclRedOp_t", op);
  const size_t n = count * type_size(type);
  CHECK_RANGE(fn, "send", send, n);
  CHECK_RANGE(fn, "recv", recv, n);
  if (send != recv && overlap(send, n, recv, n)) return refuse(ncclInvalidArgument, fn, "send and recv overlap");
  logf("ncclAllReduce(count=%zu, %s, %s%s)", count, type_name(type), op_name(op), send == recv ? ", in place" : "");
  if (int e = injected(c)) return e;
  if (n && send != recv) memmove(recv, send, n);  // the reduction over one rank
  return ncclSuccess;
}
EXPORT int ncclBroadcast(const void* send, void* recv, size_t count, int type, int root, MockComm* c, cudaStream_t s) {
  maybe_delay();
  std::lock_guard<std::mutex> g(mu);
  const char* fn = "ncclBroadcast";
  CHECK_COMM(fn, c);
  CHECK_TYPE(fn, type);
  CHECK_STREAM(fn, s);
  if (root != 0) return refuse(ncclInvalidArgument, fn, "root %d is not a rank of a world of one", root);
  const size_t n = count * type_size(type);
  CHECK_RANGE(fn, "send", send, n);
  CHECK_RANGE(fn, "recv", recv, n);
  if (send != recv && overlap(send, n, recv, n)) return refuse(ncclInvalidArgument, fn, "send and recv overlap");
  logf("ncclBroadcast(count=%zu, %s, root=%d%s)", count, type_name(type), root, send == recv ? ", in place" : "");
  if (int e = injected(c)) return e;
  if (n && send != recv) memmove(recv, send, n);
  return ncclSuccess;
}
EXPORT int ncclReduceScatter(const void* send, void* recv, size_t recvcount, int type, int op, MockComm* c,
                             cudaStream_t s) {
  maybe_delay();
  std::lock_guard<std::mutex> g(mu);
  const char* fn = "ncclReduceScatter";
  CHECK_COMM(fn, c);
  CHECK_TYPE(fn, type);
  CHECK_STREAM(fn, s);
  if (op < 0 || op > 4) return refuse(ncclInvalidArgument, fn, "reduction %d is not an ncclRedOp_t", op);
  const size_t n = recvcount * type_size(type);  // send holds nranks (1) × recvcount
  CHECK_RANGE(fn, "send", send, n * c->nranks);
  CHECK_RANGE(fn, "recv", recv, n);
  // in place: recv is this rank's block of send
  if (recv != (const char*)send + c->rank * n && overlap(send, n * c->nranks, recv, n))
    return refuse(ncclInvalidArgument, fn, "send and recv overlap");
  logf("ncclReduceScatter(recvcount=%zu, %s, %s%s)", recvcount, type_name(type), op_name(op),
       send == recv ? ", in place" : "");
  if (int e = injected(c)) return e;
  if (n && send != recv) memmove(recv, send, n);
  return ncclSuccess;
}
EXPORT int ncclAllGather(const void* send, void* recv, size_t sendcount, int type, MockComm* c, cudaStream_t s) {
  maybe_delay();
  std::lock_guard<std::mutex> g(mu);
  const char* fn = "ncclAllGather";
  CHECK_COMM(fn, c);
  CHECK_TYPE(fn, type);
  CHECK_STREAM(fn, s);
  const size_t n = sendcount * type_size(type);
  CHECK_RANGE(fn, "send", send, n);
  CHECK_RANGE(fn, "recv", recv, n * c->nranks);
  // in place: send is this rank's block of recv
  if (send != (const char*)recv + c->rank * n && overlap(send, n, recv, n * c->nranks))
    return refuse(ncclInvalidArgument, fn, "send and recv overlap");
  logf("ncclAllGather(sendcount=%zu, %s%s)", sendcount, type_name(type), send == recv ? ", in place" : "");
  if (int e = injected(c)) return e;
  if (n && send != recv) memmove(recv, send, n);
  return ncclSuccess;
}

// ---------------------------------------------------------------- point to point
static int p2p(bool is_send, const void* p, size_t count, int type, int peer, MockComm* c, cudaStream_t s) {
  std::lock_guard<std::mutex> g(mu);
  const char* fn = is_send ? "ncclSend" : "ncclRecv";
  CHECK_COMM(fn, c);
  CHECK_TYPE(fn, type);
  CHECK_STREAM(fn, s);
  if (peer < 0 || peer >= c->nranks) return refuse(ncclInvalidArgument, fn, "peer %d of a world of %d", peer, c->nranks);
  CHECK_RANGE(fn, is_send ? "send" : "recv", p, count * type_size(type));
  if (!group_depth)
    return refuse(ncclInvalidUsage, fn, "outside a group: a send to this rank's own receive would wait forever");
  logf("%s(count=%zu, %s, peer=%d)", fn, count, type_name(type), peer);
  group.push_back({is_send, p, count, type, peer, c});
  return ncclSuccess;
}
EXPORT int ncclSend(const void* p, size_t count, int type, int peer, MockComm* c, cudaStream_t s) {
  return p2p(true, p, count, type, peer, c, s);
}
EXPORT int ncclRecv(void* p, size_t count, int type, int peer, MockComm* c, cudaStream_t s) {
  return p2p(false, p, count, type, peer, c, s);
}
EXPORT int ncclGroupStart() {
  std::lock_guard<std::mutex> g(mu);
  group_depth++;
  logf("ncclGroupStart");
  return ncclSuccess;
}
// matches the group's sends to its receives in order (a world of one: every peer is rank 0)
EXPORT int ncclGroupEnd() {
  std::lock_guard<std::mutex> g(mu);
  const char* fn = "ncclGroupEnd";
  if (group_depth == 0) return refuse(ncclInvalidUsage, fn, "without ncclGroupStart");
  logf("ncclGroupEnd");
  if (--group_depth > 0) return ncclSuccess;
  std::vector<P2P> sends, recvs;
  for (const P2P& p : group) (p.send ? sends : recvs).push_back(p);
  group.clear();
  if (sends.size() != recvs.size())
    return refuse(ncclInvalidUsage, fn, "%zu sends but %zu receives in the group", sends.size(), recvs.size());
  for (size_t i = 0; i < sends.size(); i++) {
    const P2P &a = sends[i], &b = recvs[i];
    if (a.count != b.count || a.type != b.type || a.comm != b.comm)
      return refuse(ncclInvalidUsage, fn, "send %zu (%zu %s) does not match receive %zu (%zu %s)", i, a.count,
                    type_name(a.type), i, b.count, type_name(b.type));
    const size_t n = a.count * type_size(a.type);
    for (const P2P& r : recvs)
      if (overlap(a.ptr, n, r.ptr, r.count * type_size(r.type)))
        return refuse(ncclInvalidUsage, fn, "send %zu overlaps a receive of the same group", i);
  }
  for (size_t i = 0; i < sends.size(); i++)
    if (int e = injected(sends[i].comm)) return e;
    else if (sends[i].count) memcpy((void*)recvs[i].ptr, sends[i].ptr, sends[i].count * type_size(sends[i].type));
  return ncclSuccess;
}
