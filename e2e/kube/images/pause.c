/*
 * The test cluster's pod sandbox ("pause") process, and the idle entrypoint
 * of its tools image.
 *
 * A pod sandbox holds the pod's namespaces open while its containers come
 * and go. As PID 1 of the pod it must also reap orphaned children, and it
 * must exit promptly when the runtime stops the sandbox. Ours is built here
 * because the test machine cannot pull registry.k8s.io/pause.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

static int on(int sig, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    action.sa_flags = SA_RESTART;
    return sigaction(sig, &action, NULL);
}

int main(void) {
    if (on(SIGINT, stop) < 0 || on(SIGTERM, stop) < 0 || on(SIGCHLD, reap) < 0) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
}
