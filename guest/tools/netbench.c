/*
 * netbench: TCP throughput for bench/net.sh, the same program in the guest
 * and on the host side.
 *   netbench recv PORT        accept one connection, read to EOF, print MB/s
 *   netbench send HOST PORT MB  connect, write MB mebibytes, close
 * The receiver's clock runs from accept to EOF.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	struct sockaddr_in a = { .sin_family = AF_INET };
	int s, one = 1;

	if (argc == 3 && !strcmp(argv[1], "recv")) {
		long long total = 0;
		ssize_t n;
		double t0;
		int c;

		s = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		a.sin_port = htons((uint16_t)atoi(argv[2]));
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 1)) {
			perror("netbench: bind/listen");
			return 1;
		}
		printf("netbench listening\n");
		fflush(stdout);
		c = accept(s, NULL, NULL);
		if (c < 0) {
			perror("netbench: accept");
			return 1;
		}
		t0 = now();
		while ((n = read(c, buf, sizeof(buf))) > 0)
			total += n;
		printf("netbench recv_MBps %.1f (%lld bytes)\n", (double)total / 1e6 / (now() - t0), total);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "send")) {
		long long left = atoll(argv[4]) << 20;

		s = socket(AF_INET, SOCK_STREAM, 0);
		a.sin_port = htons((uint16_t)atoi(argv[3]));
		if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1 ||
		    connect(s, (struct sockaddr *)&a, sizeof(a))) {
			perror("netbench: connect");
			return 1;
		}
		memset(buf, 0x5a, sizeof(buf));
		while (left > 0) {
			ssize_t n = write(s, buf, left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf));

			if (n <= 0) {
				perror("netbench: write");
				return 1;
			}
			left -= n;
		}
		close(s);
		return 0;
	}
	fprintf(stderr, "usage: netbench recv PORT | netbench send HOST PORT MB\n");
	return 2;
}
