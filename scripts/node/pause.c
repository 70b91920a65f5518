/* The sandbox ("pause") process of the test node's pods, written for certboot's test bed: it holds
 * the pod's namespaces, reaps orphaned children (PID 1 with shareProcessNamespace: true) and exits
 * on SIGINT or SIGTERM. Built static by scripts/node-images.sh; the same job as Kubernetes'
 * build/pause/linux/pause.c, without its version flag. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { _exit(128 + sig); }

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction term = {.sa_handler = on_term};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0)
    return 1;
  for (;;) pause();
}
