/* The collectives: each checks its arguments, agrees with the other ranks (lk_agree: a
 * non-blocking all-reduce whose wait times out, so a rank that never arrives is reported), then
 * moves the data with MPI's blocking collectives in calls of at most max_count elements. Once
 * every rank has arrived, only a rank's death can stop the data phase, and mpirun then ends the
 * job; the blocking collectives (Open MPI's tuned algorithms) were 1.5-2.5x faster here than
 * its non-blocking ones. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

#define TAG 7311 /* point-to-point tag of the all-to-all fallback */
#define W lk_w

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Checks that a buffer of `have` elements equals `need`; records the message otherwise. */
static int32_t exact(lk_call* c, int32_t st, const char* what, int64_t have, int64_t need,
                     const char* why) {
  if (st) return st;
  if (have != need)
    return lk_call_fail(c, LK_ESHAPE,
                        "%s (call #%lld): %s holds %lld elements, expected %lld (%s) on rank %d "
                        "of %d",
                        lk_op_name(c->op), (long long)c->ticket, what, (long long)have,
                        (long long)need, why, W.rank, W.size);
  return LK_OK;
}

static int32_t no_overlap(lk_call* c, int32_t st, const void* a, size_t an, const void* b,
                          size_t bn) {
  if (st) return st;
  if (lk_overlap(a, an, b, bn))
    return lk_call_fail(c, LK_EARG, "%s (call #%lld): the output buffer overlaps the input",
                        lk_op_name(c->op), (long long)c->ticket);
  return LK_OK;
}

/* Reads counts[size] (doubles) into whole numbers; their sum goes to *total. */
static int32_t read_counts(lk_call* c, int32_t st, const char* what, const double* counts,
                           double counts_len, int64_t* out, int64_t* total) {
  *total = 0;
  if (st) return st;
  if (counts_len != W.size)
    return lk_call_fail(c, LK_ESHAPE,
                        "%s (call #%lld): %s holds %g entries, expected %d (one per rank)",
                        lk_op_name(c->op), (long long)c->ticket, what, counts_len, W.size);
  for (int r = 0; r < W.size; r++) {
    double v = counts[r];
    if (!(v >= 0) || v != floor(v) || v > 9007199254740992.0)
      return lk_call_fail(c, LK_ESHAPE,
                          "%s (call #%lld): %s[%d] = %g is not a whole number of bytes",
                          lk_op_name(c->op), (long long)c->ticket, what, r, v);
    out[r] = (int64_t)v;
    *total += out[r];
  }
  return LK_OK;
}

/* Runs one MPI call; on failure, breaks the communicator and returns from the entry point. */
#define RUN(name, call)                                                       \
  do {                                                                        \
    int rc_ = (call);                                                         \
    if (rc_ != MPI_SUCCESS) return lk_call_end(&c, lk_mpi_error(&c, name, rc_)); \
  } while (0)

/* Broadcasts n elements at p from root in chunks of max_count. */
#define CHUNKED_BCAST(p, n, type, esz, root)                                                    \
  for (int64_t off_ = 0; off_ < (n); off_ += W.max_count)                                      \
  RUN("MPI_Bcast", MPI_Bcast((char*)(p) + off_ * (esz), (int)min64(W.max_count, (n) - off_),  \
                             type, root, W.comm))

int32_t lk_mpi_barrier(double ticket, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_BARRIER, err, err_cap);
  if (!st) st = lk_agree(&c, LK_OK, 0, 0, NULL, 0, 0, NULL, 0, NULL); /* an all-reduce: a barrier */
  return lk_call_end(&c, st);
}

static int32_t allreduce(double ticket, void* buf, double len, MPI_Datatype type, size_t esz,
                         int op, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, op, err, err_cap);
  if (st) return lk_call_end(&c, st);
  int64_t n = 0;
  st = lk_len(&c, "buf", len, &n);
  st = lk_agree(&c, st, n, 1, "element counts", 0, 0, NULL, 0, NULL);
  if (st) return lk_call_end(&c, st);
  for (int64_t off = 0; off < n; off += W.max_count)
    RUN("MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, (char*)buf + off * esz,
                                       (int)min64(W.max_count, n - off), type, MPI_SUM, W.comm));
  return lk_call_end(&c, LK_OK);
}

int32_t lk_mpi_allreduce_f32(double ticket, float* buf, double len, char* err, int32_t err_cap) {
  return allreduce(ticket, buf, len, MPI_FLOAT, sizeof(float), OP_ALLREDUCE_F32, err, err_cap);
}

int32_t lk_mpi_allreduce_f64(double ticket, double* buf, double len, char* err, int32_t err_cap) {
  return allreduce(ticket, buf, len, MPI_DOUBLE, sizeof(double), OP_ALLREDUCE_F64, err, err_cap);
}

int32_t lk_mpi_reduce_scatter_f32(double ticket, const float* send, double send_len, float* recv,
                                  double recv_len, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_REDUCE_SCATTER_F32, err, err_cap);
  if (st) return lk_call_end(&c, st);
  int64_t n = 0, ns = 0;
  st = lk_len(&c, "recv", recv_len, &n);
  if (!st) st = lk_len(&c, "send", send_len, &ns);
  st = exact(&c, st, "send", ns, n * W.size, "ranks × the output's length");
  st = no_overlap(&c, st, send, (size_t)ns * 4, recv, (size_t)n * 4);
  st = lk_agree(&c, st, n, 1, "block lengths (output elements)", 0, 0, NULL, 0, NULL);
  if (st || n == 0) return lk_call_end(&c, st);
  if (n * W.size <= W.max_count) {
    RUN("MPI_Reduce_scatter_block",
        MPI_Reduce_scatter_block(send, recv, (int)n, MPI_FLOAT, MPI_SUM, W.comm));
  } else { /* one reduce per rank and chunk: block r of every rank summed into rank r */
    for (int64_t off = 0; off < n; off += W.max_count) {
      int cnt = (int)min64(W.max_count, n - off);
      for (int r = 0; r < W.size; r++)
        RUN("MPI_Reduce", MPI_Reduce(send + (int64_t)r * n + off, r == W.rank ? recv + off : NULL,
                                     cnt, MPI_FLOAT, MPI_SUM, r, W.comm));
    }
  }
  return lk_call_end(&c, LK_OK);
}

int32_t lk_mpi_bcast(double ticket, uint8_t* buf, double len, int32_t root, char* err,
                     int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_BCAST, err, err_cap);
  if (st) return lk_call_end(&c, st);
  int64_t n = 0;
  st = lk_len(&c, "buf", len, &n);
  if (!st && (root < 0 || root >= W.size))
    st = lk_call_fail(&c, LK_EARG, "broadcast (call #%lld): root %d is not a rank of 0 … %d",
                      (long long)c.ticket, root, W.size - 1);
  st = lk_agree(&c, st, n, 1, "byte counts", root, 1, "roots", 0, NULL);
  if (st) return lk_call_end(&c, st);
  CHUNKED_BCAST(buf, n, MPI_BYTE, 1, root);
  return lk_call_end(&c, LK_OK);
}

int32_t lk_mpi_allgather(double ticket, const uint8_t* send, double send_len, uint8_t* recv,
                         double recv_len, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_ALLGATHER, err, err_cap);
  if (st) return lk_call_end(&c, st);
  int64_t n = 0, nr = 0;
  st = lk_len(&c, "send", send_len, &n);
  if (!st) st = lk_len(&c, "recv", recv_len, &nr);
  st = exact(&c, st, "recv", nr, n * W.size, "ranks × the input's length");
  st = no_overlap(&c, st, send, (size_t)n, recv, (size_t)nr);
  st = lk_agree(&c, st, n, 1, "byte counts", 0, 0, NULL, 0, NULL);
  if (st || n == 0) return lk_call_end(&c, st);
  if (n * W.size <= W.max_count) {
    RUN("MPI_Allgather",
        MPI_Allgather(send, (int)n, MPI_BYTE, recv, (int)n, MPI_BYTE, W.comm));
  } else { /* every rank broadcasts its part in chunks */
    memcpy(recv + (int64_t)W.rank * n, send, (size_t)n);
    for (int r = 0; r < W.size; r++) CHUNKED_BCAST(recv + (int64_t)r * n, n, MPI_BYTE, 1, r);
  }
  return lk_call_end(&c, LK_OK);
}

int32_t lk_mpi_allgatherv(double ticket, const uint8_t* send, double send_len, double* counts,
                          double counts_len, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_ALLGATHERV, err, err_cap);
  if (st) return lk_call_end(&c, st);
  size_t p = (size_t)W.size;
  int64_t* cnt = malloc(sizeof(int64_t) * p);
  int* iv = malloc(sizeof(int) * 2 * p);
  uint8_t* data = NULL;
  int64_t n = 0, total = 0;
  st = lk_len(&c, "send", send_len, &n);
  if (!st && counts_len != W.size)
    st = lk_call_fail(&c, LK_ESHAPE,
                      "%s (call #%lld): counts holds %g entries, expected %d (one per rank)",
                      lk_op_name(c.op), (long long)c.ticket, counts_len, W.size);
  if (!st && (!cnt || !iv))
    st = lk_call_fail(&c, LK_ENOMEM, "%s (call #%lld): out of memory", lk_op_name(c.op),
                      (long long)c.ticket);
  st = lk_agree(&c, st, 0, 0, NULL, 0, 0, NULL, 0, NULL);
  if (!st) { /* every rank's length, then room for all (agreed: a failure fails every rank) */
    int rc = MPI_Allgather(&n, 1, MPI_INT64_T, cnt, 1, MPI_INT64_T, W.comm);
    if (rc != MPI_SUCCESS) st = lk_mpi_error(&c, "MPI_Allgather", rc);
    for (size_t r = 0; r < p && !st; r++) total += cnt[r];
    int32_t local = LK_OK;
    if (!st && !(data = malloc(total ? (size_t)total : 1)))
      local = lk_call_fail(&c, LK_ENOMEM, "%s (call #%lld): cannot allocate %lld bytes",
                           lk_op_name(c.op), (long long)c.ticket, (long long)total);
    if (!st) st = lk_agree(&c, local, total, 1, "totals", 0, 0, NULL, 0, NULL);
  }
  if (!st && total > 0) {
    if (total <= W.max_count) {
      int64_t d = 0;
      for (size_t r = 0; r < p; r++) iv[r] = (int)cnt[r], iv[p + r] = (int)d, d += cnt[r];
      int rc = MPI_Allgatherv(send, (int)n, MPI_BYTE, data, iv, iv + p, MPI_BYTE, W.comm);
      if (rc != MPI_SUCCESS) st = lk_mpi_error(&c, "MPI_Allgatherv", rc);
    } else { /* every rank broadcasts its part in chunks */
      int64_t d = 0;
      for (int r = 0; r < W.size && !st; r++) {
        if (r == W.rank && n) memcpy(data + d, send, (size_t)n);
        for (int64_t off = 0; off < cnt[r] && !st; off += W.max_count) {
          int rc = MPI_Bcast(data + d + off, (int)min64(W.max_count, cnt[r] - off), MPI_BYTE, r,
                             W.comm);
          if (rc != MPI_SUCCESS) st = lk_mpi_error(&c, "MPI_Bcast", rc);
        }
        d += cnt[r];
      }
    }
  }
  if (!st) {
    for (size_t r = 0; r < p; r++) counts[r] = (double)cnt[r];
    st = lk_keep_result(&c, data, total);
    data = NULL;
  }
  free(data), free(cnt), free(iv);
  return lk_call_end(&c, st);
}

/* Exchanges block j of send with every rank j as point-to-point messages of at most max_count
 * bytes, in the pairwise order (step s: send to rank+s, receive from rank−s), one step at a time
 * so that no rank waits on a message its peer has not yet posted. */
static int32_t pairwise(lk_call* c, const uint8_t* send, const int64_t* scnt, const int64_t* sdsp,
                        uint8_t* recv, const int64_t* rcnt, const int64_t* rdsp) {
  if (scnt[W.rank]) memcpy(recv + rdsp[W.rank], send + sdsp[W.rank], (size_t)scnt[W.rank]);
  int32_t st = LK_OK;
  for (int s = 1; s < W.size && !st; s++) {
    int dst = (W.rank + s) % W.size, src = (W.rank - s + W.size) % W.size;
    int64_t nreq = (rcnt[src] + W.max_count - 1) / W.max_count +
                   (scnt[dst] + W.max_count - 1) / W.max_count;
    if (nreq == 0) continue;
    MPI_Request* req = malloc(sizeof(MPI_Request) * (size_t)nreq);
    if (!req)
      return lk_call_break(c, "%s (call #%lld): out of memory", lk_op_name(c->op),
                           (long long)c->ticket);
    int k = 0, rc = MPI_SUCCESS;
    for (int64_t off = 0; off < rcnt[src] && rc == MPI_SUCCESS; off += W.max_count)
      rc = MPI_Irecv(recv + rdsp[src] + off, (int)min64(W.max_count, rcnt[src] - off), MPI_BYTE,
                     src, TAG, W.comm, &req[k++]);
    for (int64_t off = 0; off < scnt[dst] && rc == MPI_SUCCESS; off += W.max_count)
      rc = MPI_Isend(send + sdsp[dst] + off, (int)min64(W.max_count, scnt[dst] - off), MPI_BYTE,
                     dst, TAG, W.comm, &req[k++]);
    st = rc != MPI_SUCCESS ? lk_mpi_error(c, "MPI_Isend/MPI_Irecv", rc) : lk_wait(c, req, k);
    free(req);
  }
  return st;
}

int32_t lk_mpi_alltoall(double ticket, const uint8_t* send, double send_len, uint8_t* recv,
                        double recv_len, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_ALLTOALL, err, err_cap);
  if (st) return lk_call_end(&c, st);
  int64_t ns = 0, nr = 0, b = 0;
  st = lk_len(&c, "send", send_len, &ns);
  if (!st) st = lk_len(&c, "recv", recv_len, &nr);
  if (!st && ns % W.size)
    st = lk_call_fail(&c, LK_ESHAPE,
                      "all-to-all (call #%lld): send holds %lld bytes, not a multiple of the %d "
                      "ranks",
                      (long long)c.ticket, (long long)ns, W.size);
  b = ns / W.size;
  st = exact(&c, st, "recv", nr, ns, "the input's length");
  st = no_overlap(&c, st, send, (size_t)ns, recv, (size_t)nr);
  st = lk_agree(&c, st, b, 1, "block sizes (bytes per rank)", 0, 0, NULL, 0, NULL);
  if (st || b == 0) return lk_call_end(&c, st);
  if (ns <= W.max_count) {
    RUN("MPI_Alltoall", MPI_Alltoall(send, (int)b, MPI_BYTE, recv, (int)b, MPI_BYTE, W.comm));
    return lk_call_end(&c, LK_OK);
  }
  int64_t* v = malloc(sizeof(int64_t) * 2 * (size_t)W.size);
  if (!v)
    return lk_call_end(&c, lk_call_break(&c, "all-to-all (call #%lld): out of memory",
                                         (long long)c.ticket));
  for (int r = 0; r < W.size; r++) v[r] = b, v[W.size + r] = (int64_t)r * b;
  st = pairwise(&c, send, v, v + W.size, recv, v, v + W.size);
  free(v);
  return lk_call_end(&c, st);
}

int32_t lk_mpi_alltoallv(double ticket, const uint8_t* send, double send_len,
                         const double* send_counts, double send_counts_len, double* recv_counts,
                         double recv_counts_len, char* err, int32_t err_cap) {
  lk_call c;
  int32_t st = lk_call_begin(&c, ticket, OP_ALLTOALLV, err, err_cap);
  if (st) return lk_call_end(&c, st);
  size_t p = (size_t)W.size;
  int64_t* v = malloc(sizeof(int64_t) * 4 * p);
  int* iv = malloc(sizeof(int) * 4 * p);
  uint8_t* data = NULL;
  int64_t ns = 0, stot = 0, rtot = 0;
  st = lk_len(&c, "send", send_len, &ns);
  if (!st && (!v || !iv))
    st = lk_call_fail(&c, LK_ENOMEM, "%s (call #%lld): out of memory", lk_op_name(c.op),
                      (long long)c.ticket);
  int64_t *scnt = v, *sdsp = v ? v + p : NULL, *rcnt = v ? v + 2 * p : NULL,
          *rdsp = v ? v + 3 * p : NULL;
  st = read_counts(&c, st, "send_counts", send_counts, send_counts_len, scnt, &stot);
  st = exact(&c, st, "send", ns, stot, "the sum of send_counts");
  if (!st && recv_counts_len != W.size)
    st = lk_call_fail(&c, LK_ESHAPE,
                      "%s (call #%lld): recv_counts holds %g entries, expected %d (one per rank)",
                      lk_op_name(c.op), (long long)c.ticket, recv_counts_len, W.size);
  st = lk_agree(&c, st, 0, 0, NULL, 0, 0, NULL, 0, NULL);
  lk_agreed ag = {{0}, {0}};
  if (!st) { /* what every rank sends this one, then room for it */
    int rc = MPI_Alltoall(scnt, 1, MPI_INT64_T, rcnt, 1, MPI_INT64_T, W.comm);
    if (rc != MPI_SUCCESS) st = lk_mpi_error(&c, "MPI_Alltoall", rc);
    for (size_t r = 0; r < p && !st; r++) rtot += rcnt[r];
    int32_t local = LK_OK;
    if (!st && !(data = malloc(rtot ? (size_t)rtot : 1)))
      local = lk_call_fail(&c, LK_ENOMEM, "%s (call #%lld): cannot allocate %lld bytes",
                           lk_op_name(c.op), (long long)c.ticket, (long long)rtot);
    /* any rank over the chunk limit: every rank exchanges point to point */
    int big = stot > W.max_count || rtot > W.max_count;
    if (!st) st = lk_agree(&c, local, 0, 0, NULL, 0, 0, NULL, big, &ag);
  }
  if (!st) {
    int64_t sd = 0, rd = 0;
    for (size_t r = 0; r < p; r++) sdsp[r] = sd, sd += scnt[r], rdsp[r] = rd, rd += rcnt[r];
    if (ag.max[AG_FLAG]) {
      st = pairwise(&c, send, scnt, sdsp, data, rcnt, rdsp);
    } else {
      for (size_t r = 0; r < p; r++)
        iv[r] = (int)scnt[r], iv[p + r] = (int)sdsp[r], iv[2 * p + r] = (int)rcnt[r],
        iv[3 * p + r] = (int)rdsp[r];
      int rc = MPI_Alltoallv(send, iv, iv + p, MPI_BYTE, data, iv + 2 * p, iv + 3 * p, MPI_BYTE,
                             W.comm);
      if (rc != MPI_SUCCESS) st = lk_mpi_error(&c, "MPI_Alltoallv", rc);
    }
  }
  if (!st) {
    for (size_t r = 0; r < p; r++) recv_counts[r] = (double)rcnt[r];
    st = lk_keep_result(&c, data, rtot);
    data = NULL;
  }
  free(data), free(v), free(iv);
  return lk_call_end(&c, st);
}
