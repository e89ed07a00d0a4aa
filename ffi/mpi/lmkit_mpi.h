/*
 * lmkit MPI ABI: liblmkit_mpi.so, a communicator over Open MPI for lib/comm.
 *
 * The rules of ffi/include/lmkit.h hold here too: every entry point returns int32_t status (LK_OK
 * or an LK_E* code), arguments are caller-owned typed-array buffers and int32_t / double scalars
 * only (counts as double, exact up to 2^53), every length is checked before memory is touched,
 * and nothing exits or prints. The library also exports lk_abi_version (LK_MPI_ABI_VERSION),
 * lk_last_error and lk_info of lmkit.h.
 *
 * Collectives. Each collective takes a `ticket` first: the position of the call among all calls
 * of this process's communicator, counted from 0 by the caller at the moment it issues the call.
 * Calls run strictly in ticket order, one at a time, whichever thread makes them (Deno's
 * `nonblocking` symbols run on worker threads in no fixed order); so MPI is initialised with
 * MPI_THREAD_SERIALIZED, and every rank enters MPI's collectives in the order its program issued
 * them. (MPI_THREAD_MULTIPLE alone would not do: two threads would enter collectives on the one
 * communicator in an order that differs between ranks, and MPI requires the same order on all.)
 * Every ticket must be used, in one call: a call waits (up to the timeout) for the calls of
 * all smaller tickets. A caller that blocks its thread in a call must therefore have made every
 * earlier call already; so every collective is one call (the variable-size ones keep their result
 * for lk_mpi_take instead of asking the caller for a receive buffer in a second call).
 * Each collective first agrees with the other ranks (one all-reduce of a few integers) on the
 * number of agreements made before, the operation, its sizes, its root and the chunk limit; a
 * disagreement (LK_ESHAPE for sizes, LK_EARG for roots and limits, LK_ECOMM for different
 * operations or calls), or an invalid argument on any rank, fails the call on every rank and no
 * data moves, so the communicator stays usable. Its last two arguments are a message buffer (`err`, `err_cap`
 * bytes) that receives the failure's sentence, NUL-terminated: lk_last_error is per thread, and a
 * nonblocking call's thread is not the caller's. lk_last_error holds it too for the thread that
 * ran the call.
 * A call that the other ranks do not all join within the timeout (lk_mpi_init), or that MPI
 * reports failed, returns LK_ECOMM and leaves the communicator broken: every later call fails at
 * once with LK_ECOMM naming the first failure, and lk_mpi_finalize refuses (MPI_Finalize would
 * wait for the missing rank). The process should then exit with a non-zero status; mpirun ends
 * the job. (The wait for the other ranks is the agreement, a non-blocking all-reduce polled with
 * the timeout; once all have joined, data moves with MPI's blocking collectives, which only a
 * rank's death can stop, and mpirun then ends the job.)
 * Buffers: byte buffers are uint8_t, lengths in elements of the buffer's type. The output of a
 * collective must not overlap its input (checked).
 * Large buffers: MPI counts are int. Each collective moves at most `max_count` elements per MPI
 * call (lk_mpi_configure; default and upper bound 2^31 − 1): all-reduce and broadcast are split
 * into chunks; all-gather(v), all-to-all(v) and reduce-scatter whose totals exceed it are done as
 * chunked broadcasts, point-to-point exchanges and reduces instead.
 */
#ifndef LMKIT_MPI_H
#define LMKIT_MPI_H
#include <stdint.h>
#include "../include/lmkit.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LK_MPI_ABI_VERSION 1
/* A collective failed: ranks at different calls or operations (the communicator stays usable),
 * a timeout or an MPI error (it is broken), or it is broken by an earlier failure. (The next free
 * code after lmkit.h's.) */
#define LK_ECOMM 7

/* Initialises MPI (MPI_THREAD_SERIALIZED) once per process, making libmpi's symbols global first
 * (Open MPI's components need them), and duplicates MPI_COMM_WORLD with errors returned.
 * timeout_s > 0: the most a collective may wait. out[4] = rank, size, the thread level MPI
 * provided (MPI_THREAD_*), and 1 when MPI was already initialised by someone else. */
int32_t lk_mpi_init(double timeout_s, int32_t* out, double out_len);
/* Collective, ticketed: waits for every earlier call, then frees the communicator and calls
 * MPI_Finalize (on the thread that initialised MPI). After it, MPI cannot be used again. */
int32_t lk_mpi_finalize(double ticket, char* err, int32_t err_cap);
/* MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job. Not ticketed; for fatal paths. */
int32_t lk_mpi_abort(int32_t code);
/* Collective, ticketed: sets the timeout (seconds, > 0) and the chunk limit (1 … 2^31 − 1
 * elements per MPI call); every rank must pass the same max_count. */
int32_t lk_mpi_configure(double ticket, double timeout_s, double max_count, char* err,
                         int32_t err_cap);
int32_t lk_mpi_barrier(double ticket, char* err, int32_t err_cap);
/* In place: buf = the element-wise sum of every rank's buf; every rank passes the same len. */
int32_t lk_mpi_allreduce_f32(double ticket, float* buf, double len, char* err, int32_t err_cap);
int32_t lk_mpi_allreduce_f64(double ticket, double* buf, double len, char* err, int32_t err_cap);
/* send[size·n] (block r = elements [r·n, (r+1)·n)); recv[n] = the sum over ranks of their block
 * number `rank`. Every rank passes the same n = recv_len and send_len = size·n. */
int32_t lk_mpi_reduce_scatter_f32(double ticket, const float* send, double send_len, float* recv,
                                  double recv_len, char* err, int32_t err_cap);
/* In place: every rank's buf = root's buf; every rank passes the same len and root. */
int32_t lk_mpi_bcast(double ticket, uint8_t* buf, double len, int32_t root, char* err,
                     int32_t err_cap);
/* recv[size·n]: bytes [r·n, (r+1)·n) = rank r's send[n]; every rank passes the same n. */
int32_t lk_mpi_allgather(double ticket, const uint8_t* send, double send_len, uint8_t* recv,
                         double recv_len, char* err, int32_t err_cap);
/* counts[size] = every rank's send_len; the ranks' send buffers one after another (rank r's at
 * counts[0] + … + counts[r−1]) are kept as the result of this ticket, for lk_mpi_take. */
int32_t lk_mpi_allgatherv(double ticket, const uint8_t* send, double send_len, double* counts,
                          double counts_len, char* err, int32_t err_cap);
/* send[size·b]: block j goes to rank j; recv[size·b]: block r came from rank r; every rank passes
 * the same b. */
int32_t lk_mpi_alltoall(double ticket, const uint8_t* send, double send_len, uint8_t* recv,
                        double recv_len, char* err, int32_t err_cap);
/* send = the blocks for ranks 0 … size−1 one after another (send_counts[size] bytes each);
 * recv_counts[size] = the bytes each rank sent this rank, and those blocks one after another
 * (rank 0's first) are kept as the result of this ticket, for lk_mpi_take. */
int32_t lk_mpi_alltoallv(double ticket, const uint8_t* send, double send_len,
                         const double* send_counts, double send_counts_len, double* recv_counts,
                         double recv_counts_len, char* err, int32_t err_cap);
/* Not a collective, not ticketed: copies the kept result of call `ticket` into dst when dst_len is
 * its length (else LK_ESHAPE), and frees it either way; dst NULL with dst_len 0 only frees it.
 * The message goes to lk_last_error. */
int32_t lk_mpi_take(double ticket, uint8_t* dst, double dst_len);

#ifdef __cplusplus
}
#endif
#endif
