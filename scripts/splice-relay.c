/* The floor for scripts/bench-egress.sh: the smallest TCP relay that moves bytes with
 * splice(2) through a pipe, never copying them to user space. Usage: splice-relay
 * LISTEN_PORT TARGET_PORT (both on 127.0.0.1). One process per connection, one per
 * direction; EOF is passed on with shutdown(SHUT_WR). Not part of clawjail. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void pump(int from, int to) {
    int p[2];
    if (pipe(p) < 0) _exit(1);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    for (;;) {
        ssize_t n = splice(from, NULL, p[1], NULL, 1 << 20, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (n <= 0) break;
        while (n > 0) {
            ssize_t m = splice(p[0], NULL, to, NULL, n, SPLICE_F_MOVE | SPLICE_F_MORE);
            if (m <= 0) _exit(1);
            n -= m;
        }
    }
    shutdown(to, SHUT_WR);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    signal(SIGCHLD, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (void *)&a, sizeof a) < 0 || listen(l, 1024) < 0) return 1;
    struct sockaddr_in t = a;
    t.sin_port = htons(atoi(argv[2]));
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0) continue;
        if (fork() == 0) {
            int u = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(u, (void *)&t, sizeof t) < 0) _exit(1);
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (fork() == 0) pump(c, u);
            pump(u, c);
        }
        close(c);
    }
}
