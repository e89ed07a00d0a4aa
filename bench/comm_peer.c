/* The C peer of bench/comm_bench.ts: each collective of lib/comm called straight from a plain
 * MPI program, timed the way bench/_comm_rank.ts times lmkit's communicator.
 *
 * Build and run (comm_bench.ts does both, in a temp dir):
 *   mpicc -O2 -o comm_peer bench/comm_peer.c
 *   mpirun --allow-run-as-root --oversubscribe -np 2 ./comm_peer [--sizes 4096,262144,...]
 *     [--reps R] [--ops allreduce_f32,...]
 *
 * For each collective and message size: `warmup` untimed calls, then R timed calls, each preceded
 * by an MPI_Barrier; each rank times its own call (MPI_Wtime), and a call's time is the largest
 * over the ranks. Rank 0 prints one JSON line per (collective, size) with the median of those
 * times. Bytes per call: the bytes of each rank's send buffer (all-reduce: the buffer; all-gather:
 * the n bytes each rank sends; reduce-scatter and all-to-all: all `size` blocks each rank sends;
 * broadcast: the buffer; barrier: 0). The same calls as lib/comm's C side: MPI_Allreduce in place,
 * MPI_Allgather, MPI_Reduce_scatter_block, MPI_Alltoall, MPI_Bcast from root 0, MPI_Barrier.
 * Also `agreement` (C only): the MPI_Iallreduce of 16 int64 (MAX) polled with MPI_Testall that
 * lib/comm's lk_agree makes before every collective, i.e. lmkit's fixed cost per call in MPI.
 * R defaults to clamp(1 GiB / bytes, 100, 1000); warmup to max(3, R / 10). */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static int default_reps(long bytes) {
  long r = bytes > 0 ? (1L << 30) / bytes : 1000;
  return (int)(r < 100 ? 100 : r > 1000 ? 1000 : r);
}

static int has_op(const char* list, const char* op) {
  if (!list) return 1;
  size_t n = strlen(op);
  for (const char* p = list; (p = strstr(p, op)); p += n)
    if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
  return 0;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char* sizes_arg = "4096,262144,1048576,16777216";
  const char* ops = NULL;
  int reps_arg = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--sizes")) sizes_arg = argv[i + 1];
    else if (!strcmp(argv[i], "--reps")) reps_arg = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--ops")) ops = argv[i + 1];
    else {
      if (!rank) fprintf(stderr, "comm_peer: unknown option '%s'\n", argv[i]);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
  }
  long sizes[64];
  int nsizes = 0;
  for (const char* p = sizes_arg; *p && nsizes < 64;) {
    sizes[nsizes++] = strtol(p, (char**)&p, 10);
    if (*p == ',') p++;
  }
  long max_bytes = 0;
  for (int i = 0; i < nsizes; i++) {
    long b = sizes[i];
    if (b % (8L * size)) {
      if (!rank) fprintf(stderr, "comm_peer: size %ld is not a multiple of 8 × %d ranks\n", b, size);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (b > max_bytes) max_bytes = b;
  }
  /* send and receive buffers large enough for every collective (all-gather receives size × n) */
  uint8_t* send = malloc((size_t)max_bytes);
  uint8_t* recv = malloc((size_t)max_bytes * (size_t)size);
  double* t = malloc(sizeof(double) * 1000);
  double* all = malloc(sizeof(double) * 1000 * (size_t)size);
  if (!send || !recv || !t || !all) MPI_Abort(MPI_COMM_WORLD, 3);
  memset(send, 0, (size_t)max_bytes);
  memset(recv, 0, (size_t)max_bytes * (size_t)size);

  const char* names[] = {"allreduce_f32", "allreduce_f64", "allgather", "reduce_scatter_f32",
                         "alltoall", "broadcast", "barrier", "agreement"};
  int64_t agree[16] = {0};
  for (int op = 0; op < 8; op++) {
    if (!has_op(ops, names[op])) continue;
    for (int si = 0; si < (op >= 6 ? 1 : nsizes); si++) {
      long b = op >= 6 ? 0 : sizes[si];
      int reps = reps_arg > 0 ? reps_arg : default_reps(b);
      if (reps > 1000) reps = 1000;
      int warm = reps / 10 < 3 ? 3 : reps / 10;
      for (int i = -warm; i < reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        switch (op) {
          case 0:
            MPI_Allreduce(MPI_IN_PLACE, send, (int)(b / 4), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            break;
          case 1:
            MPI_Allreduce(MPI_IN_PLACE, send, (int)(b / 8), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            break;
          case 2:
            MPI_Allgather(send, (int)b, MPI_BYTE, recv, (int)b, MPI_BYTE, MPI_COMM_WORLD);
            break;
          case 3:
            MPI_Reduce_scatter_block(send, recv, (int)(b / 4 / size), MPI_FLOAT, MPI_SUM,
                                     MPI_COMM_WORLD);
            break;
          case 4:
            MPI_Alltoall(send, (int)(b / size), MPI_BYTE, recv, (int)(b / size), MPI_BYTE,
                         MPI_COMM_WORLD);
            break;
          case 5:
            MPI_Bcast(send, (int)b, MPI_BYTE, 0, MPI_COMM_WORLD);
            break;
          case 6:
            MPI_Barrier(MPI_COMM_WORLD);
            break;
          default: { /* what lk_agree adds to every lmkit call: a small non-blocking all-reduce,
                      * polled */
            MPI_Request req;
            int done = 0;
            MPI_Iallreduce(MPI_IN_PLACE, agree, 16, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD, &req);
            while (!done) MPI_Testall(1, &req, &done, MPI_STATUSES_IGNORE);
          }
        }
        double dt = MPI_Wtime() - t0;
        if (i >= 0) t[i] = dt;
      }
      /* a call's time: the slowest rank's */
      MPI_Gather(t, reps, MPI_DOUBLE, all, reps, MPI_DOUBLE, 0, MPI_COMM_WORLD);
      if (!rank) {
        for (int i = 0; i < reps; i++)
          for (int r = 1; r < size; r++)
            if (all[(size_t)r * reps + i] > all[i]) all[i] = all[(size_t)r * reps + i];
        qsort(all, (size_t)reps, sizeof(double), cmp_double);
        double med = reps % 2 ? all[reps / 2] : 0.5 * (all[reps / 2 - 1] + all[reps / 2]);
        printf("{\"impl\":\"c\",\"op\":\"%s\",\"bytes\":%ld,\"np\":%d,\"reps\":%d,"
               "\"median_s\":%.9g,\"min_s\":%.9g}\n",
               names[op], b, size, reps, med, all[0]);
        fflush(stdout);
      }
    }
  }
  free(send), free(recv), free(t), free(all);
  MPI_Finalize();
  return 0;
}
