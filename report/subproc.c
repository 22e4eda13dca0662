/* subproc.c: the report runs `dtrain sample ...` and `dtrain eval ...` as child processes of
 * this same binary, so it uses exactly the commands a user would, and a job's failure stays
 * a message instead of ending the report. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

int run_dtrain(char *const args[], const char *out_path, char *why, size_t whylen) {
    char err_path[REPORT_PATH + 8];
    snprintf(err_path, sizeof err_path, "%s.err", out_path);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return snprintf(why, whylen, "cannot start a child process"), -1;
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
        close(out), close(err);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return snprintf(why, whylen, "lost the child process"), -1;
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    why[0] = 0;
    if (rc != 0) {
        FILE *f = fopen(err_path, "r");
        if (!f || !fgets(why, (int)whylen, f)) snprintf(why, whylen, "exit code %d", rc);
        if (f) fclose(f);
        why[strcspn(why, "\n")] = 0;
    }
    unlink(err_path);
    return rc;
}
