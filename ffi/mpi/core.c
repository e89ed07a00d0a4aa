/* Start-up, error state, the ticket order of calls, agreement between ranks and waiting. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "internal.h"

lk_world lk_w = {
    .comm = MPI_COMM_NULL, .rank = 0, .size = 1, .timeout_s = 600, .max_count = INT_MAX};

static __thread char err_msg[600];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cv;
static int64_t next_ticket = 0;
static int turn_held = 0; /* a call holds the turn */
enum { ST_NONE, ST_READY, ST_FINALIZED };
static int state = ST_NONE;
static int inited_by_us = 0, provided_level = -1;
static pthread_t init_thread;
static char broken_msg[600]; /* non-empty once a call failed in MPI or timed out */
static int64_t agreements = 0; /* agreements made (under the turn) */

static const char* op_names[OP_COUNT_] = {
    "(none)",
    "barrier",
    "all-reduce f32",
    "all-reduce f64",
    "reduce-scatter f32",
    "broadcast",
    "all-gather",
    "all-gather of variable sizes",
    "all-to-all",
    "all-to-all of variable sizes",
    "configure",
    "finalize"};

const char* lk_op_name(int64_t op) {
  return op >= 1 && op < OP_COUNT_ ? op_names[op] : "an unknown operation";
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void vrecord(lk_call* c, const char* fmt, va_list ap) {
  vsnprintf(err_msg, sizeof err_msg, fmt, ap);
  if (c && c->err && c->err_cap > 0) snprintf(c->err, (size_t)c->err_cap, "%s", err_msg);
}

int32_t lk_call_fail(lk_call* c, int32_t code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vrecord(c, fmt, ap);
  va_end(ap);
  return code;
}

int32_t lk_call_break(lk_call* c, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vrecord(c, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&mu);
  if (!broken_msg[0]) snprintf(broken_msg, sizeof broken_msg, "%s", err_msg);
  pthread_mutex_unlock(&mu);
  return LK_ECOMM;
}

static int32_t plain_fail(int32_t code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static int32_t plain_fail(int32_t code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vrecord(NULL, fmt, ap);
  va_end(ap);
  return code;
}

int32_t lk_len(lk_call* c, const char* what, double have, int64_t* out) {
  if (!(have >= 0) || have != floor(have) || have > 9007199254740992.0)
    return lk_call_fail(c, LK_ESHAPE,
                        "%s (call #%lld): %s length %g is not a whole number of elements in "
                        "[0, 2^53]",
                        lk_op_name(c->op), (long long)c->ticket, what, have);
  *out = (int64_t)have;
  return LK_OK;
}

int lk_overlap(const void* a, size_t an, const void* b, size_t bn) {
  if (!an || !bn || !a || !b) return 0;
  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return x < y + bn && y < x + an;
}

int32_t lk_call_begin(lk_call* c, double ticket, int op, char* err, int32_t err_cap) {
  c->ticket = -1;
  c->op = op;
  c->err = err;
  c->err_cap = err_cap;
  c->have_turn = 0;
  if (err_cap < 0) c->err_cap = 0;
  if (!(ticket >= 0) || ticket != floor(ticket) || ticket >= 9007199254740992.0)
    return lk_call_fail(c, LK_EARG, "%s: ticket %g is not a whole number in [0, 2^53)",
                        lk_op_name(op), ticket);
  c->ticket = (int64_t)ticket;
  pthread_mutex_lock(&mu);
  if (state != ST_READY) {
    pthread_mutex_unlock(&mu);
    return lk_call_fail(c, LK_EARG, "%s (call #%lld): MPI is %s", lk_op_name(op),
                        (long long)c->ticket,
                        state == ST_NONE ? "not initialised (call lk_mpi_init first)"
                                         : "finalised; it cannot be used again in this process");
  }
  if (c->ticket < next_ticket) {
    int64_t nt = next_ticket;
    pthread_mutex_unlock(&mu);
    return lk_call_fail(c, LK_EARG, "%s: call #%lld was already made (the next call is #%lld)",
                        lk_op_name(op), (long long)c->ticket, (long long)nt);
  }
  /* Wait for the turn. Earlier calls may run long (and many may be queued): only a stretch of
   * `timeout` seconds in which no call holds the turn and none ends means that the next ticket
   * was never used, a caller's bug that would otherwise stall this process's calls for ever. */
  int64_t seen = next_ticket;
  double deadline = now_s() + lk_w.timeout_s;
  while (c->ticket != next_ticket) {
    struct timespec ts;
    ts.tv_sec = (time_t)floor(deadline);
    ts.tv_nsec = (long)((deadline - floor(deadline)) * 1e9);
    int rc = pthread_cond_timedwait(&turn_cv, &mu, &ts);
    if (c->ticket == next_ticket) break;
    if (next_ticket != seen || turn_held) { /* progress, or a call is running */
      seen = next_ticket;
      deadline = now_s() + lk_w.timeout_s;
      continue;
    }
    if (rc == ETIMEDOUT) {
      int64_t nt = next_ticket;
      pthread_mutex_unlock(&mu);
      return lk_call_break(c,
                           "%s (call #%lld) waited %g s for call #%lld of this process, which "
                           "was never made",
                           lk_op_name(op), (long long)c->ticket, lk_w.timeout_s, (long long)nt);
    }
  }
  turn_held = 1;
  c->have_turn = 1;
  if (broken_msg[0]) {
    char copy[sizeof broken_msg];
    snprintf(copy, sizeof copy, "%s", broken_msg);
    pthread_mutex_unlock(&mu);
    return lk_call_fail(c, LK_ECOMM,
                        "%s (call #%lld): the communicator is unusable since an earlier call "
                        "failed: %s",
                        lk_op_name(op), (long long)c->ticket, copy);
  }
  pthread_mutex_unlock(&mu);
  return LK_OK;
}

int32_t lk_call_end(lk_call* c, int32_t status) {
  if (c->have_turn) {
    pthread_mutex_lock(&mu);
    next_ticket++;
    turn_held = 0;
    pthread_cond_broadcast(&turn_cv);
    pthread_mutex_unlock(&mu);
    c->have_turn = 0;
  }
  return status;
}

int32_t lk_mpi_error(lk_call* c, const char* what, int rc) {
  char s[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) == MPI_SUCCESS)
    s[len < 0 ? 0 : len > MPI_MAX_ERROR_STRING ? MPI_MAX_ERROR_STRING : len] = 0;
  else
    snprintf(s, sizeof s, "MPI error %d", rc);
  return lk_call_break(c, "%s (call #%lld) failed in %s on rank %d of %d: %s", lk_op_name(c->op),
                       (long long)c->ticket, what, lk_w.rank, lk_w.size, s);
}

int32_t lk_wait(lk_call* c, MPI_Request* reqs, int n) {
  /* Spin on MPI_Testall briefly (short collectives finish here), then yield, then sleep a little
   * between polls: Open MPI progresses non-blocking collectives only inside MPI calls, and a
   * rank that waits long for a slow peer should not take a core from the computation. */
  double t0 = now_s(), waited = 0;
  for (long iter = 0;; iter++) {
    int flag = 0;
    int rc = MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return lk_mpi_error(c, "MPI_Testall", rc);
    if (flag) return LK_OK;
    if (iter < 256) continue;
    if ((iter & 31) == 0) {
      waited = now_s() - t0;
      if (waited > lk_w.timeout_s)
        return lk_call_break(c,
                             "%s (call #%lld) did not complete within %g s on rank %d of %d: "
                             "another rank died, hangs, or never made this call",
                             lk_op_name(c->op), (long long)c->ticket, lk_w.timeout_s, lk_w.rank,
                             lk_w.size);
    }
    if (waited < 0.005) {
      sched_yield();
    } else { /* sleep 5 % of the time waited so far, 20 µs to 1 ms: a long wait (the other ranks
              * still in their backward) costs the computation on this core almost nothing, and
              * adds at most 5 % (or 1 ms) to it */
      double s = waited * 0.05;
      long ns = s < 2e-5 ? 20000 : s > 1e-3 ? 1000000 : (long)(s * 1e9);
      struct timespec d = {0, ns};
      nanosleep(&d, NULL);
    }
  }
}

enum { F_SEQ, F_OP, F_MAXCOUNT, F_COUNT, F_AUX, F_FLAG, F_ERR_RANK, F_ERR_CODE, F_N };

int32_t lk_agree(lk_call* c, int32_t local_status, int64_t count, int same_count,
                 const char* count_what, int64_t aux, int same_aux, const char* aux_what,
                 int64_t flag, lk_agreed* out) {
  /* the number of agreements this process made before: equal on every rank unless their
   * programs diverged (a ticket is not: a two-phase call that failed in its first phase used two
   * tickets, and the same call on another rank may have been a one-phase call) */
  int64_t seq = agreements++;
  int64_t v[F_N] = {seq, c->op, lk_w.max_count, count, aux, flag,
                    local_status ? lk_w.rank : -1, local_status};
  int64_t m[2 * F_N];
  for (int i = 0; i < F_N; i++) {
    m[i] = v[i];
    m[F_N + i] = -v[i];
  }
  MPI_Request req;
  int rc = MPI_Iallreduce(MPI_IN_PLACE, m, 2 * F_N, MPI_INT64_T, MPI_MAX, lk_w.comm, &req);
  if (rc != MPI_SUCCESS) return lk_mpi_error(c, "MPI_Iallreduce (agreement)", rc);
  int32_t st = lk_wait(c, &req, 1);
  if (st) return st;
  int64_t mx[F_N], mn[F_N];
  for (int i = 0; i < F_N; i++) {
    mx[i] = m[i];
    mn[i] = -m[F_N + i];
  }
  const char* name = lk_op_name(c->op);
  long long t = (long long)c->ticket;
  if (mx[F_SEQ] != mn[F_SEQ])
    return lk_call_fail(c, LK_ECOMM,
                        "Ranks are out of step: %s (call #%lld) is this rank's (%d of %d) "
                        "collective #%lld, but the others are at their collectives #%lld to "
                        "#%lld; every rank must make the same collective calls in the same order",
                        name, t, lk_w.rank, lk_w.size, (long long)seq, (long long)mn[F_SEQ],
                        (long long)mx[F_SEQ]);
  if (mx[F_OP] != mn[F_OP])
    return lk_call_fail(c, LK_ECOMM,
                        "At call #%lld this rank (%d of %d) called %s but another rank called "
                        "%s; every rank must make the same collective calls in the same order",
                        t, lk_w.rank, lk_w.size, name,
                        lk_op_name(mx[F_OP] != c->op ? mx[F_OP] : mn[F_OP]));
  if (mx[F_ERR_RANK] >= 0) {
    if (local_status) return local_status; /* this rank's own message stands */
    return lk_call_fail(c, (int32_t)mx[F_ERR_CODE],
                        "%s (call #%lld): rank %lld passed an invalid argument (its error says "
                        "which); no data was exchanged",
                        name, t, (long long)mx[F_ERR_RANK]);
  }
  if (mx[F_MAXCOUNT] != mn[F_MAXCOUNT])
    return lk_call_fail(c, LK_EARG,
                        "%s (call #%lld): ranks use different chunk limits (max count %lld on "
                        "this rank, from %lld to %lld across ranks); configure every rank alike",
                        name, t, (long long)lk_w.max_count, (long long)mn[F_MAXCOUNT],
                        (long long)mx[F_MAXCOUNT]);
  if (same_count && mx[F_COUNT] != mn[F_COUNT])
    return lk_call_fail(c, LK_ESHAPE,
                        "%s (call #%lld): ranks passed different %s: %lld on this rank (%d of "
                        "%d), from %lld to %lld across ranks; every rank must pass the same",
                        name, t, count_what, (long long)count, lk_w.rank, lk_w.size,
                        (long long)mn[F_COUNT], (long long)mx[F_COUNT]);
  if (same_aux && mx[F_AUX] != mn[F_AUX])
    return lk_call_fail(c, LK_EARG,
                        "%s (call #%lld): ranks passed different %s: %lld on this rank (%d of "
                        "%d), from %lld to %lld across ranks; every rank must pass the same",
                        name, t, aux_what, (long long)aux, lk_w.rank, lk_w.size,
                        (long long)mn[F_AUX], (long long)mx[F_AUX]);
  if (out) {
    out->max[AG_COUNT] = mx[F_COUNT];
    out->min[AG_COUNT] = mn[F_COUNT];
    out->max[AG_AUX] = mx[F_AUX];
    out->min[AG_AUX] = mn[F_AUX];
    out->max[AG_FLAG] = mx[F_FLAG];
    out->min[AG_FLAG] = mn[F_FLAG];
  }
  return LK_OK;
}

/* ---- start-up and shut-down ---- */

static const char* level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "single";
    case MPI_THREAD_FUNNELED:
      return "funneled";
    case MPI_THREAD_SERIALIZED:
      return "serialized";
    case MPI_THREAD_MULTIPLE:
      return "multiple";
    default:
      return "unknown";
  }
}

static pthread_once_t cv_once = PTHREAD_ONCE_INIT;
static void init_cv(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&turn_cv, &a);
  pthread_condattr_destroy(&a);
}

int32_t lk_mpi_init(double timeout_s, int32_t* out, double out_len) {
  pthread_once(&cv_once, init_cv);
  if (!(out_len >= 4) || out_len != floor(out_len))
    return plain_fail(LK_ESHAPE, "lk_mpi_init: out holds %g elements, expected 4", out_len);
  if (!(timeout_s > 0) || !isfinite(timeout_s))
    return plain_fail(LK_EARG, "lk_mpi_init: timeout %g s is not a positive number of seconds",
                      timeout_s);
  pthread_mutex_lock(&mu);
  int st = state;
  pthread_mutex_unlock(&mu);
  if (st != ST_NONE)
    return plain_fail(LK_EARG, "lk_mpi_init: MPI was already %s by this library in this process",
                      st == ST_READY ? "initialised" : "finalised (it cannot be started again)");
  /* Deno loads this library with RTLD_LOCAL, so libmpi (a dependency) came in local too; Open
   * MPI's components (mca_*.so, dlopened by MPI_Init) are not linked against it and resolve
   * their references to libopen-pal/libopen-rte/libmpi in the global scope. Promote libmpi and
   * its dependencies to it (and never unload them: MPI's threads outlive Deno's dlclose). */
  Dl_info di;
  if (!dladdr((void*)&MPI_Init_thread, &di) || !di.dli_fname)
    return plain_fail(LK_EBACKEND, "lk_mpi_init: cannot find the file of libmpi: %s",
                      dlerror() ? dlerror() : "dladdr failed");
  if (!dlopen(di.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD | RTLD_NODELETE))
    return plain_fail(LK_EBACKEND, "lk_mpi_init: cannot make '%s' global: %s", di.dli_fname,
                      dlerror());
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (finalized)
    return plain_fail(LK_EARG, "lk_mpi_init: MPI was finalised in this process and cannot be "
                               "started again");
  int provided = -1, rc;
  if (!inited) {
    rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) return plain_fail(LK_EBACKEND, "MPI_Init_thread failed (error %d)", rc);
    inited_by_us = 1;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED)
    return plain_fail(LK_EBACKEND,
                      "MPI provides thread level '%s', but the mpi communicator calls MPI from "
                      "Deno's worker threads (one at a time) and needs at least 'serialized'",
                      level_name(provided));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm comm;
  rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rc != MPI_SUCCESS) return plain_fail(LK_EBACKEND, "MPI_Comm_dup failed (error %d)", rc);
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  pthread_mutex_lock(&mu);
  lk_w.comm = comm;
  lk_w.rank = rank;
  lk_w.size = size;
  lk_w.timeout_s = timeout_s;
  lk_w.max_count = INT_MAX;
  next_ticket = 0;
  agreements = 0;
  broken_msg[0] = 0;
  provided_level = provided;
  init_thread = pthread_self();
  state = ST_READY;
  pthread_mutex_unlock(&mu);
  out[0] = rank;
  out[1] = size;
  out[2] = provided;
  out[3] = inited_by_us ? 0 : 1;
  return LK_OK;
}

int32_t lk_mpi_finalize(double ticket, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_FINALIZE, err, err_cap);
  if (st) {
    if (st == LK_ECOMM)
      lk_call_fail(&c, LK_ECOMM,
                   "finalize (call #%lld): refused because the communicator is broken "
                   "(MPI_Finalize would wait for ranks that may be gone); exit with a non-zero "
                   "status instead and mpirun ends the job. First failure: %s",
                   (long long)c.ticket, broken_msg);
    return lk_call_end(&c, st);
  }
  if (!pthread_equal(pthread_self(), init_thread))
    st = lk_call_fail(&c, LK_EARG,
                      "finalize (call #%lld): must be called on the thread that called "
                      "lk_mpi_init",
                      (long long)c.ticket);
  st = lk_agree(&c, st, 0, 0, NULL, 0, 0, NULL, 0, NULL);
  if (st) return lk_call_end(&c, st);
  pthread_mutex_lock(&mu);
  state = ST_FINALIZED;
  pthread_mutex_unlock(&mu);
  MPI_Comm_free(&lk_w.comm);
  if (inited_by_us) {
    int rc = MPI_Finalize();
    if (rc != MPI_SUCCESS) st = lk_call_fail(&c, LK_ECOMM, "MPI_Finalize failed (error %d)", rc);
  }
  return lk_call_end(&c, st);
}

int32_t lk_mpi_abort(int32_t code) {
  pthread_mutex_lock(&mu);
  int st = state;
  pthread_mutex_unlock(&mu);
  if (st != ST_READY) return plain_fail(LK_EARG, "lk_mpi_abort: MPI is not running");
  MPI_Abort(MPI_COMM_WORLD, code);
  return plain_fail(LK_ECOMM, "MPI_Abort returned");
}

int32_t lk_mpi_configure(double ticket, double timeout_s, double max_count, char* err,
                         int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_CONFIGURE, err, err_cap);
  if (st) return lk_call_end(&c, st);
  int64_t mc = 0;
  if (!(timeout_s > 0) || !isfinite(timeout_s))
    st = lk_call_fail(&c, LK_EARG, "configure (call #%lld): timeout %g s is not a positive number",
                      (long long)c.ticket, timeout_s);
  else if (!(max_count >= 1 && max_count <= INT_MAX) || max_count != floor(max_count))
    st = lk_call_fail(&c, LK_EARG,
                      "configure (call #%lld): max count %g is not a whole number in [1, %d]",
                      (long long)c.ticket, max_count, INT_MAX);
  else
    mc = (int64_t)max_count;
  st = lk_agree(&c, st, mc, 1, "max counts", 0, 0, NULL, 0, NULL);
  if (!st) {
    lk_w.timeout_s = timeout_s;
    lk_w.max_count = mc;
  }
  return lk_call_end(&c, st);
}

/* ---- results kept for lk_mpi_take ---- */

typedef struct {
  int64_t ticket, len;
  uint8_t* data;
} kept_t;
static kept_t* kept;
static size_t n_kept, cap_kept;

int32_t lk_keep_result(lk_call* c, uint8_t* data, int64_t len) {
  pthread_mutex_lock(&mu);
  if (n_kept == cap_kept) {
    size_t cap = cap_kept ? 2 * cap_kept : 16;
    kept_t* k = realloc(kept, cap * sizeof *k);
    if (!k) {
      pthread_mutex_unlock(&mu);
      free(data);
      return lk_call_break(c, "%s (call #%lld): out of memory", lk_op_name(c->op),
                           (long long)c->ticket);
    }
    kept = k, cap_kept = cap;
  }
  kept[n_kept++] = (kept_t){c->ticket, len, data};
  pthread_mutex_unlock(&mu);
  return LK_OK;
}

int32_t lk_mpi_take(double ticket, uint8_t* dst, double dst_len) {
  kept_t k = {-1, 0, NULL};
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < n_kept; i++) {
    if ((double)kept[i].ticket == ticket) {
      k = kept[i];
      kept[i] = kept[--n_kept];
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  if (!k.data)
    return plain_fail(LK_EARG, "lk_mpi_take: call #%g has no result (never made, failed, or taken)",
                      ticket);
  int32_t st = LK_OK;
  if (dst == NULL && dst_len == 0) {
    /* only free it */
  } else if (dst_len != (double)k.len || (k.len > 0 && !dst)) {
    st = plain_fail(LK_ESHAPE,
                    "lk_mpi_take: dst holds %g bytes, but the result of call #%g has %lld",
                    dst_len, ticket, (long long)k.len);
  } else if (k.len > 0) {
    memcpy(dst, k.data, (size_t)k.len);
  }
  free(k.data);
  return st;
}

/* ---- the common entry points of lmkit.h ---- */

int32_t lk_abi_version(int32_t* out, double out_len) {
  if (!(out_len >= 1))
    return plain_fail(LK_ESHAPE, "lk_abi_version: out holds %g elements, expected 1", out_len);
  out[0] = LK_MPI_ABI_VERSION;
  return LK_OK;
}

int32_t lk_last_error(char* buf, int32_t cap) {
  if (cap <= 0) return LK_EARG;
  snprintf(buf, (size_t)cap, "%s", err_msg);
  return LK_OK;
}

static void json_escape(char* dst, size_t cap, const char* src) {
  size_t j = 0;
  for (size_t i = 0; src[i] && j + 7 < cap; i++) {
    unsigned char ch = (unsigned char)src[i];
    if (ch == '"' || ch == '\\') {
      dst[j++] = '\\';
      dst[j++] = (char)ch;
    } else if (ch < 0x20) {
      j += (size_t)snprintf(dst + j, cap - j, "\\u%04x", ch);
    } else {
      dst[j++] = (char)ch;
    }
  }
  dst[j] = 0;
}

int32_t lk_info(char* buf, int32_t cap) {
  if (cap <= 0) return LK_EARG;
  char lib[MPI_MAX_LIBRARY_VERSION_STRING + 1] = "", esc[2 * sizeof lib];
  int len = 0;
  MPI_Get_library_version(lib, &len);
  lib[len < 0 ? 0 : len > MPI_MAX_LIBRARY_VERSION_STRING ? MPI_MAX_LIBRARY_VERSION_STRING : len] =
      0;
  /* keep the first line ("Open MPI v4.1.4, package: ..., ident: ..., repo rev: ..., date") */
  char* nl = strchr(lib, '\n');
  if (nl) *nl = 0;
  json_escape(esc, sizeof esc, lib);
  pthread_mutex_lock(&mu);
  int st = state;
  pthread_mutex_unlock(&mu);
  snprintf(buf, (size_t)cap,
           "{\"backend\":\"mpi\",\"abi\":%d,\"library\":\"%s\",\"state\":\"%s\",\"rank\":%d,"
           "\"size\":%d,\"threadLevel\":\"%s\",\"timeoutSeconds\":%g,\"maxCount\":%lld,"
           "\"broken\":%s}",
           LK_MPI_ABI_VERSION, esc,
           st == ST_NONE ? "uninitialised" : st == ST_READY ? "ready" : "finalised", lk_w.rank,
           lk_w.size, provided_level < 0 ? "none" : level_name(provided_level), lk_w.timeout_s,
           (long long)lk_w.max_count, broken_msg[0] ? "true" : "false");
  return LK_OK;
}
