/* Test-only companion to Debian's libfaketime, preloaded before it (LD_PRELOAD="this.so libfaketime.so.1").
 *
 * libfaketime fakes the wall clock (clock_gettime, timespec_get, ...) and converts the absolute, wall-clock
 * deadline of pthread_cond_timedwait() from faked to real time. It does not hook C11's cnd_timedwait(), which
 * glibc implements by calling its internal pthread_cond_timedwait directly. librdkafka is built on C11
 * threads when libc has them (glibc >= 2.28): it computes each deadline with the faked timespec_get() and
 * glibc then waits for it on the real clock, so under an offset of +1 h every timed wait lasts an hour and
 * the consumer never joins its group.
 *
 * glibc's cnd_t and mtx_t are its pthread_cond_t and pthread_mutex_t, so cnd_timedwait() here waits through
 * the public pthread_cond_timedwait(), which libfaketime converts as it does for any program. Nothing else
 * changes: the process's wall clock is still libfaketime's, its monotonic clock the real one. */
#include <errno.h>
#include <pthread.h>
#include <threads.h>

int cnd_timedwait(cnd_t *restrict cond, mtx_t *restrict mutex, const struct timespec *restrict deadline) {
  int err = pthread_cond_timedwait((pthread_cond_t *)cond, (pthread_mutex_t *)mutex, deadline);
  return err == 0 ? thrd_success : err == ETIMEDOUT ? thrd_timedout : thrd_error;
}
