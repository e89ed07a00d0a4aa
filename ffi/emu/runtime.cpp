// The CUDA emulator's runtime: tracked device memory with guard pages, kernel launches with one
// fiber per thread, block barriers and warp exchanges. See cuda_emu.h.
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include "cuda_emu.h"

// ThreadSanitizer annotations (build with EMU_SANITIZE=thread: ffi/emu/build.sh): every GPU thread
// is a TSan fiber; a switch into a fiber carries the scheduler's history, a switch back carries
// nothing, and only barriers, warp exchanges and the end of a block order one GPU thread after
// another, so that two threads touching the same memory between barriers is reported as a race.
#if defined(EMU_TSAN)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#define TSAN(x) x
#else
#define TSAN(x)
#endif

namespace emu {
uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;
}  // namespace emu

// ---------------------------------------------------------------- errors
static cudaError_t last_error = cudaSuccess;
static cudaError_t set_error(cudaError_t e, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cuda emulator: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  last_error = e;
  return e;
}

extern "C" cudaError_t cudaGetLastError(void) {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

extern "C" const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotReady: return "device not ready";
  }
  return "unknown error";
}

extern "C" cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}

extern "C" cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return set_error(cudaErrorInvalidValue, "device %d does not exist", device);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "lmkit CUDA emulator (CPU)");
  p->totalGlobalMem = (size_t)8 << 30;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 1;
  return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

static std::atomic<int> stream_stalled{0};
extern "C" void emu_stream_stall(int on) { stream_stalled = on; }
extern "C" cudaError_t cudaStreamQuery(cudaStream_t) {
  return stream_stalled ? cudaErrorNotReady : cudaSuccess;
}

// ---------------------------------------------------------------- device memory
// Each allocation is mapped on its own: its bytes, rounded up to 16 (the widest access a kernel
// makes), end where an inaccessible guard page begins, so a read or write 16 bytes or more past the
// end faults. The 64 bytes before the start and the rounding slack after the end hold a canary,
// checked after every kernel: a smaller stray write on either side is reported too.
struct Alloc {
  char* map;
  size_t map_bytes, bytes;
};
static std::map<uintptr_t, Alloc> allocs;  // by start address
static std::mutex mem_mu;
static const size_t page = (size_t)sysconf(_SC_PAGESIZE);
static const size_t FRONT = 64;
static const unsigned char CANARY = 0xa5;

extern "C" cudaError_t cudaMalloc(void** p, size_t bytes) {
  const size_t rounded = (bytes + 15) / 16 * 16, data = (rounded + FRONT + page - 1) / page * page;
  void* m = mmap(nullptr, data + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return set_error(cudaErrorMemoryAllocation, "cannot map %zu bytes", bytes);
  mprotect((char*)m + data, page, PROT_NONE);
  char* start = (char*)m + data - rounded;
  memset(start - FRONT, CANARY, FRONT);
  memset(start, 0xff, bytes);
  memset(start + bytes, CANARY, rounded - bytes);
  std::lock_guard<std::mutex> g(mem_mu);
  allocs[(uintptr_t)start] = Alloc{(char*)m, data + page, bytes};
  *p = start;
  return cudaSuccess;
}

// after a kernel: were the canaries around any allocation written? (restored once reported)
static void check_canaries(const char* kernel) {
  std::lock_guard<std::mutex> g(mem_mu);
  for (auto& [a, al] : allocs) {
    char* start = (char*)a;
    const size_t tail = (al.bytes + 15) / 16 * 16 - al.bytes;
    for (int side = 0; side < 2; side++) {
      char* c = side ? start + al.bytes : start - FRONT;
      const size_t n = side ? tail : FRONT;
      size_t hit = n;
      for (size_t i = 0; i < n && hit == n; i++)
        if ((unsigned char)c[i] != CANARY) hit = i;
      if (hit == n) continue;
      set_error(cudaErrorIllegalAddress, "%s wrote %s the %zu-byte allocation at %p (byte %s%zu)", kernel,
                side ? "past the end of" : "before the start of", al.bytes, (void*)start, side ? "+" : "-",
                side ? al.bytes + hit : FRONT - hit);
      memset(c, CANARY, n);
    }
  }
}

extern "C" cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> g(mem_mu);
  auto it = allocs.find((uintptr_t)p);
  if (it == allocs.end())
    return set_error(cudaErrorInvalidDevicePointer, "cudaFree(%p): not the start of a live allocation", p);
  munmap(it->second.map, it->second.map_bytes);
  allocs.erase(it);
  return cudaSuccess;
}

extern "C" int emu_is_device(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> g(mem_mu);
  auto it = allocs.upper_bound((uintptr_t)p);
  if (it == allocs.begin()) return 0;
  --it;
  const uintptr_t a = (uintptr_t)p, s = it->first;
  return a >= s && a - s <= it->second.bytes && bytes <= it->second.bytes - (a - s);
}

extern "C" cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  const bool dd = emu_is_device(dst, bytes), sd = emu_is_device(src, bytes);
  bool ok = false;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dd && !emu_is_device(src, 1); break;
    case cudaMemcpyDeviceToHost: ok = sd && !emu_is_device(dst, 1); break;
    case cudaMemcpyDeviceToDevice: ok = dd && sd; break;
    default: ok = false;
  }
  if (!ok)
    return set_error(cudaErrorInvalidValue,
                     "cudaMemcpy(%p, %p, %zu bytes, kind %d): a range is not where the kind says "
                     "(destination %s, source %s)",
                     dst, src, bytes, (int)kind, dd ? "on the device" : "not a whole device range",
                     sd ? "on the device" : "not a whole device range");
  memmove(dst, src, bytes);
  return cudaSuccess;
}

extern "C" cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!emu_is_device(p, bytes))
    return set_error(cudaErrorInvalidValue, "cudaMemset(%p, %zu bytes): not inside one allocation", p, bytes);
  memset(p, value, bytes);
  return cudaSuccess;
}

// ---------------------------------------------------------------- fibers
// A context switch: on x86-64 a few instructions that keep the callee-saved registers, MXCSR and
// the x87 control word on the stack being left (ucontext's switch makes a signal-mask system call,
// which made the emulator several times slower); elsewhere ucontext.
#if defined(__x86_64__)
extern "C" __attribute__((visibility("hidden"))) void emu_switch(void** save_sp, void* to_sp);
asm(R"(
  .text
  .globl emu_switch
  .hidden emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");
struct Context {
  void* sp;
};
static void switch_to(Context* from, Context* to) { emu_switch(&from->sp, to->sp); }
// a context that starts entry() on the given stack (entry must never return)
static void make_context(Context* c, char* stack, size_t bytes, void (*entry)()) {
  uintptr_t top = ((uintptr_t)stack + bytes) & ~(uintptr_t)15;
  uint64_t* ret = (uint64_t*)(top - 16);  // 16-aligned: rsp ≡ 8 (mod 16) at entry, as after a call
  ret[0] = (uint64_t)(uintptr_t)entry;
  uint64_t* sp = ret - 7;                  // MXCSR and control word, then r15 … rbp
  uint32_t csr[2] = {0x1f80u, 0x037fu};
  memcpy(sp, csr, 8);
  for (int i = 1; i < 7; i++) sp[i] = 0;
  c->sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
static void switch_to(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
static void make_context(Context* c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = bytes;
  c->uc.uc_link = nullptr;
  makecontext(&c->uc, entry, 0);
}
#endif

namespace {
enum State { READY, AT_BLOCK, AT_WARP, DONE };
struct Fiber {
  Context ctx;
  void* tsan;
  State state;
  uint3 tid;
  int lane, warp;
};
struct Block {
  std::vector<Fiber> f;
  std::vector<int> warp_waiting, warp_size, warp_live;
  std::vector<unsigned long long> slots;  // one per thread: the value it put into an exchange
  int block_waiting = 0, live = 0;
};
Context sched_ctx;
Block* blk = nullptr;
Fiber* cur = nullptr;
void (*cur_body)(void*) = nullptr;
void* cur_ctx = nullptr;
const char* cur_name = "";
std::vector<char*> stacks;
const size_t stack_bytes = 256 << 10;
sigjmp_buf fault_jmp;
volatile sig_atomic_t in_kernel = 0;
void* fault_addr = nullptr;
struct sigaction old_segv, old_bus;

unsigned long long epoch = 1;

TSAN(void* tsan_host = nullptr; std::vector<void*> tsan_fibers; char block_done;)

void fiber_main() {
  cur_body(cur_ctx);
  cur->state = DONE;
  blk->live--;
  blk->warp_live[cur->warp]--;
  TSAN(__tsan_release(&block_done));
  TSAN(__tsan_switch_to_fiber(tsan_host, 1));
  switch_to(&cur->ctx, &sched_ctx);
}

void yield() {
  TSAN(__tsan_switch_to_fiber(tsan_host, 1));  // 1: no happens-before from a GPU thread
  switch_to(&cur->ctx, &sched_ctx);
}

void on_fault(int sig, siginfo_t* si, void* uc) {
  if (in_kernel) {
    fault_addr = si->si_addr;
    in_kernel = 0;
    siglongjmp(fault_jmp, 1);
  }
  sigaction(sig, sig == SIGSEGV ? &old_segv : &old_bus, nullptr);  // not ours: the default action
  (void)uc;
}

char* stack_for(size_t i) {
  while (stacks.size() <= i) {
    void* s = mmap(nullptr, stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (s == MAP_FAILED) return nullptr;
    stacks.push_back((char*)s);
  }
  return stacks[i];
}
}  // namespace

namespace emu {
static std::vector<std::pair<char*, char*>> shared_sections;
static bool launch_syncs = false;  // the running kernel has reached a __syncthreads
void register_shared(char* begin, char* end) {
  for (auto& r : shared_sections)
    if (r.first == begin) return;
  shared_sections.emplace_back(begin, end);
}
void unregister_shared(char* begin) {
  for (size_t i = 0; i < shared_sections.size(); i++)
    if (shared_sections[i].first == begin) shared_sections.erase(shared_sections.begin() + (long)i--);
}

int lane() { return cur->lane; }
unsigned long long barrier_epoch() { return epoch; }

void kernel_error(const char* what) {
  set_error(cudaErrorLaunchFailure, "%s: block (%u,%u,%u) thread (%u,%u,%u): %s", cur_name, block_idx.x, block_idx.y,
            block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z, what);
  siglongjmp(fault_jmp, 2);
}

void syncthreads() {
  launch_syncs = true;
  cur->state = AT_BLOCK;
  blk->block_waiting++;
  TSAN(__tsan_release(blk));
  yield();
  TSAN(__tsan_acquire(blk));
}

// Every lane of the calling thread's warp deposits v in its slot and waits until all have; `read`
// then reads the slots, and a second meeting keeps any lane from overwriting its slot before every
// lane has read.
template <typename Read>
static void warp_meeting(unsigned mask, unsigned long long v, const char* what, Read read) {
  Block& b = *blk;
  const int w = cur->warp, base = w * 32;
  static thread_local char msg[128];
  if (mask != 0xffffffffu) {
    snprintf(msg, sizeof msg, "a warp %s with a partial mask (only full masks are emulated)", what);
    kernel_error(msg);
  }
  if (b.warp_size[w] != 32) {
    snprintf(msg, sizeof msg, "a full-mask warp %s in a warp of fewer than 32 threads", what);
    kernel_error(msg);
  }
  b.slots[(size_t)base + cur->lane] = v;
  for (int meeting = 0; meeting < 2; meeting++) {
    cur->state = AT_WARP;
    b.warp_waiting[w]++;
    TSAN(__tsan_release(&b.warp_waiting[w]));
    yield();
    TSAN(__tsan_acquire(&b.warp_waiting[w]));
    if (meeting == 0) read(&b.slots[(size_t)base]);
  }
}

unsigned long long warp_exchange(unsigned mask, unsigned long long v, int src) {
  unsigned long long r = 0;
  warp_meeting(mask, v, "exchange", [&](const unsigned long long* slots) { r = slots[src & 31]; });
  return r;
}

void warp_allgather(unsigned mask, unsigned long long v, unsigned long long* all) {
  warp_meeting(mask, v, "all-gather", [&](const unsigned long long* slots) {
    for (int i = 0; i < 32; i++) all[i] = slots[i];
  });
}

void run(const char* name, dim3 grid, dim3 block, void (*body)(void*), void* ctx) {
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (!threads || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || !grid.x || !grid.y ||
      !grid.z || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    set_error(cudaErrorInvalidConfiguration, "%s<<<(%u,%u,%u), (%u,%u,%u)>>>: invalid configuration", name, grid.x,
              grid.y, grid.z, block.x, block.y, block.z);
    return;
  }
  cur_body = body;
  cur_ctx = ctx;
  cur_name = name;
  grid_dim = grid;
  block_dim = block;
  Block b;
  b.f.resize(threads);
  const int warps = (int)((threads + 31) / 32);
  b.slots.resize(threads);
  b.warp_size.assign(warps, 32);
  if (threads % 32) b.warp_size[warps - 1] = (int)(threads % 32);
  for (size_t i = 0; i < threads; i++) {
    if (!stack_for(i)) {
      set_error(cudaErrorMemoryAllocation, "%s: cannot map fiber stacks", name);
      return;
    }
  }
  TSAN(tsan_host = __tsan_get_current_fiber());
  TSAN(while (tsan_fibers.size() < threads) tsan_fibers.push_back(__tsan_create_fiber(0)));
  TSAN(for (size_t i = 0; i < threads; i++) b.f[i].tsan = tsan_fibers[i]);
  blk = &b;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
  sigaction(SIGBUS, &sa, &old_bus);
  uint3 bid{0, 0, 0};
  volatile bool failed = false;
  bool first_block = true;
  launch_syncs = false;
  const int jumped = sigsetjmp(fault_jmp, 1);
  if (jumped) {
    failed = true;
    if (jumped == 1)
      set_error(cudaErrorIllegalAddress, "%s: block (%u,%u,%u) thread (%u,%u,%u) touched %p, outside every allocation",
                name, block_idx.x, block_idx.y, block_idx.z, thread_idx.x, thread_idx.y, thread_idx.z, fault_addr);
  }
  for (; !failed && bid.z < grid.z; bid.z++, bid.y = 0)
    for (; !failed && bid.y < grid.y; bid.y++, bid.x = 0)
      for (; !failed && bid.x < grid.x; bid.x++) {
        block_idx = bid;
        epoch++;
        // before the first block, and before each later one once the kernel has shown that it
        // shares (by a barrier): a grid-stride kernel over millions of blocks pays nothing
        if (first_block || launch_syncs)
          for (auto& r : shared_sections) memset(r.first, 0xff, (size_t)(r.second - r.first));
        first_block = false;
        b.live = (int)threads;
        b.block_waiting = 0;
        b.warp_waiting.assign(warps, 0);
        b.warp_live = b.warp_size;
        for (size_t i = 0; i < threads; i++) {
          Fiber& f = b.f[i];
          f.tid = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y), (unsigned)(i / block.x / block.y)};
          f.lane = (int)(i % 32);
          f.warp = (int)(i / 32);
          f.state = READY;
          make_context(&f.ctx, stacks[i], stack_bytes, fiber_main);
        }
        TSAN(__tsan_acquire(&block_done));  // earlier blocks happened before this one
        while (b.live > 0) {
          bool progress = false;
          for (size_t i = 0; i < threads; i++) {
            Fiber& f = b.f[i];
            if (f.state != READY) continue;
            cur = &f;
            thread_idx = f.tid;
            in_kernel = 1;
            TSAN(__tsan_switch_to_fiber(f.tsan, 0));  // 0: the scheduler's history goes along
            switch_to(&sched_ctx, &f.ctx);
            in_kernel = 0;
            progress = true;
          }
          // a block barrier opens when every live thread waits at it
          if (b.block_waiting > 0 && b.block_waiting == b.live) {
            for (auto& f : b.f)
              if (f.state == AT_BLOCK) f.state = READY;
            b.block_waiting = 0;
            epoch++;
            progress = true;
          }
          for (int w = 0; w < warps; w++) {
            if (b.warp_waiting[w] == 0 || b.warp_waiting[w] != b.warp_live[w]) continue;
            if (b.warp_live[w] != b.warp_size[w]) {
              set_error(cudaErrorLaunchFailure, "%s: block (%u,%u,%u) warp %d: a full-mask exchange after lanes exited",
                        name, bid.x, bid.y, bid.z, w);
              failed = true;
              break;
            }
            for (int l = 0; l < b.warp_size[w]; l++)
              if (b.f[(size_t)w * 32 + l].state == AT_WARP) b.f[(size_t)w * 32 + l].state = READY;
            b.warp_waiting[w] = 0;
            progress = true;
          }
          if (failed) break;
          if (!progress) {
            set_error(cudaErrorLaunchFailure,
                      "%s: block (%u,%u,%u) deadlocks: %d of %d live threads wait at __syncthreads, the rest at "
                      "warp exchanges",
                      name, bid.x, bid.y, bid.z, b.block_waiting, b.live);
            failed = true;
            break;
          }
        }
      }
  in_kernel = 0;
  TSAN(__tsan_acquire(&block_done));  // the host reads what the kernel wrote
  check_canaries(name);
  sigaction(SIGSEGV, &old_segv, nullptr);
  sigaction(SIGBUS, &old_bus, nullptr);
  blk = nullptr;
  cur = nullptr;
}
}  // namespace emu

// ---------------------------------------------------------------- CUB's radix sort
cudaError_t cub::DeviceRadixSort::SortKeys(void* temp, size_t& temp_bytes, const double* in, double* out, int n,
                                           int begin_bit, int end_bit, cudaStream_t) {
  if (!temp) {
    temp_bytes = (size_t)(n > 0 ? n : 1) * 8 + 256;
    return cudaSuccess;
  }
  if (n < 0 || begin_bit != 0 || end_bit != 64) return set_error(cudaErrorInvalidValue, "SortKeys: bad arguments");
  if (!emu_is_device(temp, temp_bytes) || temp_bytes < (size_t)n * 8 + 256 || !emu_is_device(in, (size_t)n * 8) ||
      !emu_is_device(out, (size_t)n * 8))
    return set_error(cudaErrorInvalidValue, "SortKeys: a buffer is not a device range of the size needed");
  std::vector<unsigned long long> k((size_t)n);
  for (int i = 0; i < n; i++) {
    unsigned long long u;
    memcpy(&u, in + i, 8);
    k[i] = (u >> 63) ? ~u : u | (1ull << 63);
  }
  std::sort(k.begin(), k.end());
  for (int i = 0; i < n; i++) {
    unsigned long long u = (k[i] >> 63) ? k[i] & ~(1ull << 63) : ~k[i];
    memcpy(out + i, &u, 8);
  }
  return cudaSuccess;
}
