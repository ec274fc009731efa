/*
 * LD_PRELOAD shim for running the gateway under valgrind 3.19 (bench/run.py's instruction
 * counts). The gateway's main thread parks in libdispatch's dispatch_main(), which calls
 * sigsuspend() with a mask in read-only memory; valgrind 3.19 edits the mask in place
 * (to keep its own signals out) and dies with SIGSEGV. Passing a writable copy of the
 * same mask to the same system call changes nothing for the program.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, 8); /* the kernel's sigset is 64 bits */
}
