/* Private helpers shared by the MPI library's sources. */
#ifndef LK_MPI_INTERNAL_H
#define LK_MPI_INTERNAL_H
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include "lmkit_mpi.h"

/* Operation codes, agreed between ranks before each call (names in lk_op_name). */
enum {
  OP_BARRIER = 1,
  OP_ALLREDUCE_F32,
  OP_ALLREDUCE_F64,
  OP_REDUCE_SCATTER_F32,
  OP_BCAST,
  OP_ALLGATHER,
  OP_ALLGATHERV,
  OP_ALLTOALL,
  OP_ALLTOALLV,
  OP_CONFIGURE,
  OP_FINALIZE,
  OP_COUNT_
};
const char* lk_op_name(int64_t op);

/* One call in progress: its ticket, operation, and where its message goes. */
typedef struct {
  int64_t ticket;
  int op;
  char* err;
  int32_t err_cap;
  int have_turn; /* 1 once the call holds its turn (lk_call_end must then release it) */
} lk_call;

/* The communicator's state, valid between lk_mpi_init and lk_mpi_finalize. */
typedef struct {
  MPI_Comm comm;
  int rank, size;
  double timeout_s;
  int64_t max_count;
} lk_world;
extern lk_world lk_w;

/* Records the message for the call (its err buffer and this thread's lk_last_error). */
int32_t lk_call_fail(lk_call* c, int32_t code, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Marks the communicator broken with the call's message (later calls fail with it). */
int32_t lk_call_break(lk_call* c, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
/* Validates the ticket, waits for the call's turn and checks that the communicator is usable. */
int32_t lk_call_begin(lk_call* c, double ticket, int op, char* err, int32_t err_cap);
/* Releases the turn (the next ticket may run); returns status unchanged. */
int32_t lk_call_end(lk_call* c, int32_t status);

/* A length argument: a whole number of elements in [0, 2^53]; *out receives it. On failure, the
 * call's message names `what`. */
int32_t lk_len(lk_call* c, const char* what, double have, int64_t* out);

/* What the ranks agreed on: the largest and smallest value of each field across ranks. */
typedef struct {
  int64_t max[6], min[6];
} lk_agreed;
/* Fields of an agreement. */
enum { AG_COUNT, AG_AUX, AG_FLAG, AG_ERR_RANK, AG_ERR_CODE, AG_N_ };
/* One all-reduce with every rank: checks that all are at the same ticket and operation with the
 * same max_count, and (when `same_count` / `same_aux`) the same count / aux; `flag` is only
 * reduced (its max says whether any rank set it). `local_status` != LK_OK is this rank's own
 * argument failure (its message already recorded): every rank then fails. Returns LK_OK when all
 * agree and no rank failed; else the call's status, with a message on every rank. */
int32_t lk_agree(lk_call* c, int32_t local_status, int64_t count, int same_count,
                 const char* count_what, int64_t aux, int same_aux, const char* aux_what,
                 int64_t flag, lk_agreed* out);

/* Waits for n requests within the timeout; an MPI error or the timeout breaks the communicator. */
int32_t lk_wait(lk_call* c, MPI_Request* reqs, int n);

/* Names an MPI error code in the call's message and breaks the communicator. */
int32_t lk_mpi_error(lk_call* c, const char* what, int rc);

/* Keeps `data` (malloc'ed, `len` bytes) as the result of the call, for lk_mpi_take. */
int32_t lk_keep_result(lk_call* c, uint8_t* data, int64_t len);

/* True when [a, a+an) and [b, b+bn) (bytes) overlap. */
int lk_overlap(const void* a, size_t an, const void* b, size_t bn);
#endif
