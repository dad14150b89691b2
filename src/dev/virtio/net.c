/*
 * virtio-net (virtio 1.2 §5.1): one receive and one transmit queue, MAC,
 * STATUS and mergeable receive buffers. Frames go to libslirp (--net user:
 * DHCP, DNS, NAT; 10.0.2.2 is the host's loopback; hostfwd) or a tap device
 * (--net tap:IF). Both backends live on one thread of their own, because
 * libslirp is single-threaded and wants its own poll() loop: the guest's
 * doorbells only wake that thread. Offloads (§5.1.6.2): the guest may leave
 * transmit checksums to the device and send TCP segments of up to 64 KiB
 * (HOST_TSO4/6): for slirp the device completes the checksum and hands over
 * the whole segment, which slirp's TCP takes as it is (it re-segments for
 * the host's socket anyway); a tap device gets the virtio-net header itself
 * (IFF_VNET_HDR) and the host kernel does the rest. Frames from slirp are
 * marked DATA_VALID (GUEST_CSUM): slirp computed their checksums, so the
 * guest need not verify them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../core/evloop.h"
#include "../../core/log.h"
#include "../../core/vm.h"
#include "netcsum.h"
#include "virtio.h"

#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2

#define NET_QUEUE_SIZE 256
#define NET_RX 0
#define NET_TX 1
#define NET_HDR 12 /* struct virtio_net_hdr with num_buffers: always, with VERSION_1 */
#define NET_FRAME_MAX (14 + 4 + 65535) /* Ethernet, a VLAN tag, the largest IP packet (TSO) */
#define NET_BACKLOG 64 /* frames held while the guest has no receive buffers */
#define NET_MAX_BUFS 64
#define NET_TIMERS 8
#define NET_POLLS 256

struct net_timer {
	bool used, armed;
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms;
};

struct net {
	struct virtio_dev vd;
	uint8_t config[10]; /* mac[6], status, max_virtqueue_pairs */
	struct virtq_elem rx0, rx, tx;
	Slirp *slirp;
	int tap_fd;
	int wake_fd; /* eventfd: doorbells, new receive buffers, slirp's notify */
	pthread_t thread;
	bool stop;
	struct pollfd pfd[NET_POLLS];
	int npfd;
	struct net_timer timer[NET_TIMERS];
	/* frames waiting for receive buffers (net thread only) */
	uint8_t *backlog[NET_BACKLOG];
	size_t backlog_len[NET_BACKLOG];
	unsigned backlog_head, backlog_count;
	uint8_t hdr[NET_HDR]; /* the transmitted frame's virtio-net header */
	uint8_t frame[NET_HDR + NET_FRAME_MAX];
};

static void cb_notify(void *opaque);

/*
 * Lock held: put one frame into the guest's receive buffers, as many as it
 * needs with MRG_RXBUF (§5.1.6.4). false when there are not enough buffers
 * yet: nothing is consumed then.
 */
static bool net_rx_one(struct net *n, const uint8_t *pkt, size_t len)
{
	struct virtio_dev *vd = &n->vd;
	struct virtq *q = &vd->q[NET_RX].vq;
	bool mrg = virtio_has_feature(vd, VIRTIO_NET_F_MRG_RXBUF);
	uint8_t hdr[NET_HDR] = { 0 };
	uint16_t heads[NET_MAX_BUFS];
	uint32_t lens[NET_MAX_BUFS];
	size_t done = 0, total = NET_HDR + len;
	unsigned nb = 0;

	while (done < total) {
		struct virtq_elem *e = nb ? &n->rx : &n->rx0;
		size_t c;

		if (nb == NET_MAX_BUFS || virtio_pop(vd, NET_RX, e) != 1) {
			if (vd->broken)
				return false;
			q->last_avail -= (uint16_t)nb; /* not taken after all */
			/* have the driver ring when it adds buffers; if it just did, go round */
			if (virtq_notify_enable(q, true))
				cb_notify(n);
			return false;
		}
		if (e->nr_out) {
			virtio_error(vd, "a readable buffer in the receive queue");
			return false;
		}
		if (nb == 0) {
			c = iov_from_buf(e->iov, e->nr_in, NET_HDR, pkt, len);
			c = e->in_len < NET_HDR ? 0 : c + NET_HDR;
		} else {
			c = iov_from_buf(e->iov, e->nr_in, 0, pkt + (done - NET_HDR), total - done);
		}
		if (c == 0) {
			virtio_error(vd, "a receive buffer too small for the header");
			return false;
		}
		heads[nb] = e->head;
		lens[nb++] = (uint32_t)c;
		done += c;
		if (!mrg && done < total) /* one buffer must hold it all: drop the rest */
			break;
	}
	hdr[10] = (uint8_t)nb; /* num_buffers, le16 */
	if (n->slirp && virtio_has_feature(vd, VIRTIO_NET_F_GUEST_CSUM))
		hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
	iov_from_buf(n->rx0.iov, n->rx0.nr_in, 0, hdr, NET_HDR);
	for (unsigned i = 0; i < nb; i++)
		virtq_push(q, heads[i], lens[i]);
	vd->stats.requests++;
	vd->stats.bytes_out += len;
	virtio_queue_interrupt(vd, NET_RX);
	return true;
}

/* Net thread: a frame for the guest, or into the backlog if it has no buffers. */
static void net_rx(struct net *n, const uint8_t *pkt, size_t len)
{
	bool ok = false;

	pthread_mutex_lock(&n->vd.lock);
	if (virtio_running(&n->vd) && !n->backlog_count)
		ok = net_rx_one(n, pkt, len);
	pthread_mutex_unlock(&n->vd.lock);
	if (ok || n->backlog_count == NET_BACKLOG || !virtio_running(&n->vd))
		return; /* a full backlog drops, as a NIC does; TCP sends again */
	unsigned slot = (n->backlog_head + n->backlog_count) % NET_BACKLOG;
	uint8_t *copy = malloc(len);

	if (!copy)
		return;
	memcpy(copy, pkt, len);
	n->backlog[slot] = copy;
	n->backlog_len[slot] = len;
	n->backlog_count++;
}

static void net_rx_backlog(struct net *n)
{
	pthread_mutex_lock(&n->vd.lock);
	while (n->backlog_count && virtio_running(&n->vd)) {
		unsigned h = n->backlog_head;

		if (!net_rx_one(n, n->backlog[h], n->backlog_len[h]))
			break;
		free(n->backlog[h]);
		n->backlog_head = (h + 1) % NET_BACKLOG;
		n->backlog_count--;
	}
	if (!virtio_running(&n->vd)) { /* reset: the frames were for a driver that is gone */
		while (n->backlog_count) {
			free(n->backlog[n->backlog_head]);
			n->backlog_head = (n->backlog_head + 1) % NET_BACKLOG;
			n->backlog_count--;
		}
	}
	pthread_mutex_unlock(&n->vd.lock);
}

/*
 * Net thread: one frame to the backend. A tap device takes the virtio-net
 * header as it is (IFF_VNET_HDR: the host kernel checksums and segments);
 * for slirp a NEEDS_CSUM frame is finished here, and a TSO frame goes whole.
 */
static void net_tx_frame(struct net *n, size_t len)
{
	if (n->tap_fd >= 0) {
		struct iovec iov[2] = { { n->hdr, NET_HDR }, { n->frame, len } };

		n->hdr[10] = n->hdr[11] = 0; /* num_buffers: receive only */
		if (writev(n->tap_fd, iov, 2) < 0 && errno != EAGAIN)
			log_guest("virtio-net: tap write: %s", strerror(errno));
		return;
	}
	if (n->hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		unsigned start = n->hdr[6] | n->hdr[7] << 8, off = n->hdr[8] | n->hdr[9] << 8;

		if (net_csum_complete(n->frame, len, start, off)) {
			log_guest("virtio-net: checksum at %u+%u is outside the %zu-byte frame: dropped",
				  start, off, len);
			return;
		}
	}
	slirp_input(n->slirp, n->frame, (int)len);
}

/* Net thread: frames the guest sent go to the backend, one at a time (slirp may answer at once). */
static void net_tx(struct net *n)
{
	struct virtio_dev *vd = &n->vd;

	for (;;) {
		size_t len = 0;
		bool got = false;

		pthread_mutex_lock(&vd->lock);
		if (virtio_running(vd) && virtio_pop(vd, NET_TX, &n->tx) == 1) {
			got = true;
			if (n->tx.nr_in) {
				virtio_error(vd, "a writable buffer in the transmit queue");
				got = false;
			} else if (n->tx.out_len >= NET_HDR && n->tx.out_len <= sizeof(n->frame)) {
				iov_to_buf(n->tx.iov, n->tx.nr_out, 0, n->hdr, NET_HDR);
				len = iov_to_buf(n->tx.iov, n->tx.nr_out, NET_HDR, n->frame,
						 sizeof(n->frame));
			}
			if (got) {
				virtq_push(&vd->q[NET_TX].vq, n->tx.head, 0);
				vd->stats.requests++;
				vd->stats.bytes_in += len;
				virtio_queue_interrupt(vd, NET_TX);
			}
		}
		if (!got && virtio_running(vd) && virtq_notify_enable(&vd->q[NET_TX].vq, true)) {
			pthread_mutex_unlock(&vd->lock);
			continue; /* more arrived while we looked: go round */
		}
		pthread_mutex_unlock(&vd->lock);
		if (!got)
			return;
		if (len)
			net_tx_frame(n, len);
	}
}

/* I/O thread, lock held: a doorbell. The work is the net thread's. */
static void net_notify(struct virtio_dev *vd, unsigned qi)
{
	struct net *n = vd->priv;
	uint64_t one = 1;

	if (write(n->wake_fd, &one, sizeof(one)) < 0)
		log_msg("virtio-net: wake: %s", strerror(errno));
}

/* libslirp's callbacks, all on the net thread */
static ssize_t cb_send(const void *buf, size_t len, void *opaque)
{
	net_rx(opaque, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	log_guest("virtio-net (slirp): %s", msg);
}

static int64_t cb_clock(void *opaque)
{
	return (int64_t)clock_ns();
}

static void *cb_timer_new(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct net *n = opaque;

	for (int i = 0; i < NET_TIMERS; i++)
		if (!n->timer[i].used) {
			n->timer[i] = (struct net_timer){ true, false, id, cb_opaque, 0 };
			return &n->timer[i];
		}
	log_msg("virtio-net: slirp wants more than %d timers", NET_TIMERS);
	return NULL;
}

static void cb_timer_free(void *timer, void *opaque)
{
	if (timer)
		((struct net_timer *)timer)->used = false;
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct net_timer *t = timer;

	if (t) {
		t->expire_ms = expire_ms;
		t->armed = true;
	}
}

static void cb_poll_fd(int fd, void *opaque) {}

static void cb_notify(void *opaque)
{
	struct net *n = opaque;
	uint64_t one = 1;

	if (write(n->wake_fd, &one, sizeof(one)) < 0)
		log_msg("virtio-net: wake: %s", strerror(errno));
}

static int add_poll(int fd, int events, void *opaque)
{
	struct net *n = opaque;
	short ev = 0;

	if (n->npfd == NET_POLLS)
		return -1;
	ev |= (events & SLIRP_POLL_IN) ? POLLIN : 0;
	ev |= (events & SLIRP_POLL_OUT) ? POLLOUT : 0;
	ev |= (events & SLIRP_POLL_PRI) ? POLLPRI : 0;
	n->pfd[n->npfd] = (struct pollfd){ .fd = fd, .events = ev };
	return n->npfd++;
}

static int get_revents(int idx, void *opaque)
{
	struct net *n = opaque;
	short r;
	int ev = 0;

	if (idx < 0 || idx >= n->npfd)
		return 0;
	r = n->pfd[idx].revents;
	ev |= (r & POLLIN) ? SLIRP_POLL_IN : 0;
	ev |= (r & POLLOUT) ? SLIRP_POLL_OUT : 0;
	ev |= (r & POLLPRI) ? SLIRP_POLL_PRI : 0;
	ev |= (r & POLLERR) ? SLIRP_POLL_ERR : 0;
	ev |= (r & POLLHUP) ? SLIRP_POLL_HUP : 0;
	return ev;
}

static void *net_thread(void *arg)
{
	struct net *n = arg;

	while (!__atomic_load_n(&n->stop, __ATOMIC_ACQUIRE)) {
		uint32_t timeout = UINT32_MAX;
		int64_t now_ms = (int64_t)(clock_ns() / 1000000);
		int r;

		n->npfd = 0;
		add_poll(n->wake_fd, SLIRP_POLL_IN, n);
		if (n->tap_fd >= 0)
			add_poll(n->tap_fd, SLIRP_POLL_IN, n);
		if (n->slirp)
			slirp_pollfds_fill(n->slirp, &timeout, add_poll, n);
		for (int i = 0; i < NET_TIMERS; i++) {
			struct net_timer *t = &n->timer[i];

			if (t->used && t->armed) {
				int64_t left = t->expire_ms - now_ms;

				if (left < 0)
					left = 0;
				if ((uint64_t)left < timeout)
					timeout = (uint32_t)left;
			}
		}
		r = poll(n->pfd, (nfds_t)n->npfd, timeout == UINT32_MAX ? -1 : (int)timeout);
		if (r < 0 && errno != EINTR) {
			log_msg("virtio-net: poll: %s", strerror(errno));
			break;
		}
		if (n->pfd[0].revents & POLLIN) {
			uint64_t v;

			if (read(n->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_msg("virtio-net: wake: %s", strerror(errno));
			net_rx_backlog(n);
			net_tx(n);
		}
		if (n->tap_fd >= 0 && (n->pfd[1].revents & POLLIN)) {
			for (int k = 0; k < 64; k++) {
				/* IFF_VNET_HDR: a header first; offloads are off (net_tap), so never GSO */
				ssize_t len = read(n->tap_fd, n->frame, sizeof(n->frame));

				if (len <= 0)
					break;
				if (len > NET_HDR)
					net_rx(n, n->frame + NET_HDR, (size_t)len - NET_HDR);
			}
		}
		if (n->slirp)
			slirp_pollfds_poll(n->slirp, r < 0, get_revents, n);
		now_ms = (int64_t)(clock_ns() / 1000000);
		for (int i = 0; i < NET_TIMERS; i++) {
			struct net_timer *t = &n->timer[i];

			if (t->used && t->armed && t->expire_ms <= now_ms) {
				t->armed = false;
				slirp_handle_timer(n->slirp, t->id, t->cb_opaque);
			}
		}
	}
	return NULL;
}

static const SlirpCb slirp_cb = {
	.send_packet = cb_send,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_poll_fd,
	.unregister_poll_fd = cb_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new,
};

/* --net user: 10.0.2.0/24, host 10.0.2.2, DNS 10.0.2.3, guest 10.0.2.15 (QEMU's numbers) */
static int net_slirp(struct net *n, const struct vm_net *cfg)
{
	SlirpConfig sc = { .version = 4, .in_enabled = true, .vhostname = "ring3" };
	struct in_addr guest, lo;

	inet_pton(AF_INET, "10.0.2.0", &sc.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &sc.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &sc.vhost);
	inet_pton(AF_INET, "10.0.2.15", &sc.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &sc.vnameserver);
	inet_pton(AF_INET, "10.0.2.15", &guest);
	inet_pton(AF_INET, "127.0.0.1", &lo);
	n->slirp = slirp_new(&sc, &slirp_cb, n);
	if (!n->slirp)
		return -ENOMEM;
	for (int i = 0; i < cfg->nr_hostfwd; i++) {
		/* on the host's loopback only: a guest's service is not the network's */
		if (slirp_add_hostfwd(n->slirp, 0, lo, cfg->hostfwd[i].host, guest,
				      cfg->hostfwd[i].guest) < 0) {
			log_msg("--net user: cannot forward host port %u: %s", cfg->hostfwd[i].host,
				strerror(errno));
			return -EADDRINUSE;
		}
	}
	return 0;
}

static int net_tap(struct net *n, const struct vm_net *cfg)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int hdr_len = NET_HDR;

	n->tap_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->tap_fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", cfg->tap);
	if (ioctl(n->tap_fd, TUNSETIFF, &ifr) < 0) {
		int err = -errno;

		log_msg("--net tap:%s: %s", cfg->tap, strerror(-err));
		return err;
	}
	/* the 12-byte header with num_buffers, as virtio 1.x always has it */
	if (ioctl(n->tap_fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		int err = -errno;

		log_msg("--net tap:%s: TUNSETVNETHDRSZ: %s", cfg->tap, strerror(-err));
		return err;
	}
	/*
	 * No offloads towards us: a persistent tap keeps what its last user
	 * (QEMU, say) set, and would hand us 64 KiB GSO frames and partial
	 * checksums that the receive path below does not carry to the guest.
	 */
	if (ioctl(n->tap_fd, TUNSETOFFLOAD, 0ul) < 0) {
		int err = -errno;

		log_msg("--net tap:%s: TUNSETOFFLOAD: %s", cfg->tap, strerror(-err));
		return err;
	}
	return 0;
}

static const struct virtio_ops net_ops = { .queue_notify = net_notify };

int virtio_net_init(struct vm *vm)
{
	const struct vm_net *cfg = &vm->cfg->net;
	static const uint8_t default_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	struct net *n = calloc(1, sizeof(*n));
	int err;

	if (!n)
		return -ENOMEM;
	n->tap_fd = -1;
	n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->wake_fd < 0)
		return -errno;
	err = cfg->kind == NET_TAP ? net_tap(n, cfg) : net_slirp(n, cfg);
	if (err)
		return err;
	memcpy(n->config, cfg->has_mac ? cfg->mac : default_mac, 6);
	n->config[6] = VIRTIO_NET_S_LINK_UP;
	n->config[8] = 1; /* one queue pair */
	strcpy(n->vd.name, "virtio-net");
	n->vd.ops = &net_ops;
	n->vd.priv = n;
	n->vd.device_id = VIRTIO_ID_NET;
	n->vd.pci_class_hi = 0x0200; /* Ethernet */
	n->vd.config = n->config;
	n->vd.config_len = sizeof(n->config);
	n->vd.nr_queues = 2;
	n->vd.q[NET_RX].max_size = NET_QUEUE_SIZE;
	n->vd.q[NET_TX].max_size = NET_QUEUE_SIZE;
	n->vd.host_features = 1ull << VIRTIO_NET_F_MAC | 1ull << VIRTIO_NET_F_STATUS |
			      1ull << VIRTIO_NET_F_MRG_RXBUF | 1ull << VIRTIO_NET_F_CSUM |
			      1ull << VIRTIO_NET_F_HOST_TSO4;
	/*
	 * libslirp's IPv6 (off here anyway) answers a packet over the link MTU
	 * with "packet too big" instead of taking it as TCP takes a large IPv4
	 * segment, so TSO6 only where a tap carries it.
	 */
	if (n->slirp)
		n->vd.host_features |= 1ull << VIRTIO_NET_F_GUEST_CSUM;
	else
		n->vd.host_features |= 1ull << VIRTIO_NET_F_HOST_TSO6;
	err = virtio_pci_add(vm, &n->vd);
	if (err)
		return err;
	err = pthread_create(&n->thread, NULL, net_thread, n);
	if (err)
		return -err;
	pthread_setname_np(n->thread, "ring3-net");
	return 0;
}

void virtio_net_stop(struct virtio_dev *vd)
{
	struct net *n = vd->priv;
	uint64_t one = 1;

	__atomic_store_n(&n->stop, true, __ATOMIC_RELEASE);
	if (write(n->wake_fd, &one, sizeof(one)) < 0)
		log_msg("virtio-net: wake: %s", strerror(errno));
	pthread_join(n->thread, NULL);
	if (n->slirp)
		slirp_cleanup(n->slirp);
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	close(n->wake_fd);
}
