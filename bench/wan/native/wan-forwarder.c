// wan-forwarder: a userspace packet-level WAN link between a TUN device in each of two network
// namespaces. Per direction it drops at random (seeded), queues drop-tail in front of a rate
// limiter (fixed rate or a piecewise-constant bandwidth trace, looped like Mahimahi) and holds
// each packet for a one-way propagation delay, so TCP on both ends sees real RTT, loss and rate.
//
// Built on first use by bench/wan/forwarder-binary.ts (cc -O2). Driven by bench/wan/link.ts:
//   wan-forwarder --ns-a NS --ns-b NS [--dev wan0] [--seed N] [--realtime 1|0]
//                 --dir a2b [--rate-bps N] [--delay-ns N] [--loss P] [--queue-bytes N] [--queue-ns N] [--trace FILE]
//                 --dir b2a ...
// It creates the TUN devices (setns into each namespace, TUNSETIFF), prints "ready" and then reads
// commands on stdin, one per line:  stats | set a2b|b2a KEY VALUE | quit.  EOF on stdin means the
// parent is gone: exit, which removes both (non-persistent) TUN devices.
//
// Model per direction, computed when a packet arrives at time t:
//   lost with probability P (seeded xorshift64*), else
//   dropped if the bottleneck backlog (bytes not yet serialised, or time until the link is free)
//   exceeds the queue limit, else
//   start   = max(t, link_free);  finish = start + serialisation time at the rate in force;
//   deliver = finish + delay;     link_free = finish.
// Packets stay in one FIFO ring per direction, ordered by deliver time, and are written to the
// other TUN when due.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SLOT 2048u          /* bytes per packet slot: MTU up to 2000 */
#define MAX_CAP (1u << 16)  /* packets per direction in queue + flight: 128 MiB of slots at most */
#define READ_BATCH 512

typedef struct {
  int64_t start_ns; /* offset from trace start */
  double bps;
} trace_seg;

typedef struct {
  const char *name;
  int in_fd, out_fd;
  /* ring of packets: queued at the bottleneck, then in flight (propagation delay) */
  uint8_t *buf;
  uint32_t *len;
  int64_t *finish;
  int64_t *deliver;
  size_t cap, head, count;
  size_t bq; /* offset from head of the first packet whose finish is still in the future */
  uint64_t backlog_bytes;
  int64_t link_free;
  /* parameters */
  double rate_bps; /* 0 = unlimited */
  trace_seg *trace;
  size_t ntrace;
  int64_t trace_period_ns;
  int64_t delay_ns;
  double loss;
  uint64_t qlimit_bytes; /* 0 = no byte limit */
  int64_t qlimit_ns;     /* 0 = no time limit */
  uint64_t rng;
  /* counters */
  uint64_t rx_pkts, rx_bytes, loss_drops, queue_drops, overflow_drops, tx_pkts, tx_bytes, write_errs;
  int64_t max_backlog_ns;
} dir_t;

static int64_t epoch_ns;
static dir_t dirs[2];

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "wan-forwarder: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void fail(const char *msg) {
  fprintf(stderr, "wan-forwarder: %s\n", msg);
  exit(2);
}

/* xorshift64*: small, fast, deterministic for a given seed. */
static double rng_unit(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t splitmix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z = z ^ (z >> 31);
  return z ? z : 1;
}

static int open_tun_in(const char *ns, const char *dev, int mtu_unused) {
  (void)mtu_unused;
  char path[512];
  snprintf(path, sizeof path, "/var/run/netns/%s", ns);
  int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) die("open /proc/self/ns/net");
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) die(path);
  if (setns(target, CLONE_NEWNET) < 0) die("setns into namespace");
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("ioctl TUNSETIFF");
  if (setns(self, CLONE_NEWNET) < 0) die("setns back");
  close(self);
  close(target);
  return fd;
}

static void load_trace(dir_t *d, const char *file) {
  /* Normalised by bench/wan/link-spec.ts: first line "period_ns", then "start_ns bps" lines. */
  FILE *f = fopen(file, "r");
  if (!f) die(file);
  long long period;
  if (fscanf(f, "%lld", &period) != 1 || period <= 0) fail("trace: bad period");
  size_t cap = 256, n = 0;
  trace_seg *segs = malloc(cap * sizeof *segs);
  long long st;
  double bps;
  int any_positive = 0;
  while (fscanf(f, "%lld %lf", &st, &bps) == 2) {
    if (n == cap) {
      cap *= 2;
      segs = realloc(segs, cap * sizeof *segs);
      if (!segs) fail("out of memory");
    }
    if (bps < 0 || st < 0 || st >= period || (n > 0 && st <= segs[n - 1].start_ns)) fail("trace: bad segment");
    if (bps > 0) any_positive = 1;
    segs[n].start_ns = st;
    segs[n].bps = bps;
    n++;
  }
  fclose(f);
  if (n == 0 || segs[0].start_ns != 0) fail("trace: must start at 0");
  if (!any_positive) fail("trace: every rate is zero");
  d->trace = segs;
  d->ntrace = n;
  d->trace_period_ns = period;
}

/* Time at which `bytes` finish serialising when transmission starts at `start` (absolute ns). */
static int64_t tx_end(const dir_t *d, int64_t start, uint32_t bytes) {
  double bits = (double)bytes * 8.0;
  if (!d->trace) {
    if (d->rate_bps <= 0) return start;
    return start + (int64_t)(bits * 1e9 / d->rate_bps + 0.5);
  }
  int64_t t = start;
  for (int guard = 0; guard < 1000000; guard++) {
    int64_t rel = (t - epoch_ns) % d->trace_period_ns;
    int64_t base = t - rel;
    size_t lo = 0, hi = d->ntrace; /* last segment with start_ns <= rel */
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (d->trace[mid].start_ns <= rel) lo = mid;
      else hi = mid;
    }
    int64_t seg_end = base + (lo + 1 < d->ntrace ? d->trace[lo + 1].start_ns : d->trace_period_ns);
    double r = d->trace[lo].bps;
    if (r > 0) {
      double need_ns = bits * 1e9 / r;
      if ((double)t + need_ns <= (double)seg_end) return t + (int64_t)(need_ns + 0.5);
      bits -= r * (double)(seg_end - t) / 1e9;
    }
    t = seg_end;
  }
  return t;
}

static void ring_grow(dir_t *d) {
  size_t ncap = d->cap ? d->cap * 2 : 1024;
  uint8_t *nbuf = malloc(ncap * SLOT);
  uint32_t *nlen = malloc(ncap * sizeof *nlen);
  int64_t *nfin = malloc(ncap * sizeof *nfin);
  int64_t *ndel = malloc(ncap * sizeof *ndel);
  if (!nbuf || !nlen || !nfin || !ndel) fail("out of memory");
  for (size_t i = 0; i < d->count; i++) {
    size_t j = (d->head + i) % d->cap;
    memcpy(nbuf + i * SLOT, d->buf + j * SLOT, d->len[j]);
    nlen[i] = d->len[j];
    nfin[i] = d->finish[j];
    ndel[i] = d->deliver[j];
  }
  free(d->buf);
  free(d->len);
  free(d->finish);
  free(d->deliver);
  d->buf = nbuf;
  d->len = nlen;
  d->finish = nfin;
  d->deliver = ndel;
  d->cap = ncap;
  d->head = 0;
}

/* Packets whose serialisation has finished no longer count as backlog. */
static void settle_backlog(dir_t *d, int64_t now) {
  while (d->bq < d->count) {
    size_t j = (d->head + d->bq) % d->cap;
    if (d->finish[j] > now) break;
    d->backlog_bytes -= d->len[j];
    d->bq++;
  }
}

static void deliver_due(dir_t *d, int64_t now) {
  settle_backlog(d, now);
  while (d->count > 0) {
    size_t j = d->head;
    if (d->deliver[j] > now) break;
    ssize_t w = write(d->out_fd, d->buf + j * SLOT, d->len[j]);
    if (w < 0) d->write_errs++;
    else {
      d->tx_pkts++;
      d->tx_bytes += d->len[j];
    }
    d->head = (d->head + 1) % d->cap;
    d->count--;
    if (d->bq > 0) d->bq--;
  }
}

/* Reads what the TUN has ready (bounded batch) and admits or drops each packet. */
static void ingest(dir_t *d) {
  for (int k = 0; k < READ_BATCH; k++) {
    if (d->count == d->cap) {
      if (d->cap < MAX_CAP) ring_grow(d);
    }
    uint8_t scratch[SLOT];
    int full = d->count == d->cap;
    size_t j = full ? 0 : (d->head + d->count) % d->cap;
    uint8_t *dst = full ? scratch : d->buf + j * SLOT;
    ssize_t r = read(d->in_fd, dst, SLOT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      die("read tun");
    }
    if (r == 0) return;
    int64_t now = now_ns();
    d->rx_pkts++;
    d->rx_bytes += (uint64_t)r;
    if (full) {
      d->overflow_drops++;
      continue;
    }
    if (d->loss > 0 && rng_unit(&d->rng) < d->loss) {
      d->loss_drops++;
      continue;
    }
    settle_backlog(d, now);
    int64_t start = d->link_free > now ? d->link_free : now;
    int64_t wait = start - now;
    if ((d->qlimit_bytes && d->backlog_bytes + (uint64_t)r > d->qlimit_bytes) || (d->qlimit_ns && wait > d->qlimit_ns)) {
      d->queue_drops++;
      continue;
    }
    if (wait > d->max_backlog_ns) d->max_backlog_ns = wait;
    int64_t fin = tx_end(d, start, (uint32_t)r);
    d->len[j] = (uint32_t)r;
    d->finish[j] = fin;
    d->deliver[j] = fin + d->delay_ns;
    d->link_free = fin;
    d->backlog_bytes += (uint64_t)r;
    d->count++;
  }
}

static void print_stats(FILE *out) {
  fprintf(out, "{\"type\":\"stats\",\"uptimeNs\":%" PRId64, now_ns() - epoch_ns);
  for (int i = 0; i < 2; i++) {
    dir_t *d = &dirs[i];
    fprintf(out,
            ",\"%s\":{\"rxPackets\":%" PRIu64 ",\"rxBytes\":%" PRIu64 ",\"lossDrops\":%" PRIu64
            ",\"queueDrops\":%" PRIu64 ",\"overflowDrops\":%" PRIu64 ",\"txPackets\":%" PRIu64
            ",\"txBytes\":%" PRIu64 ",\"writeErrors\":%" PRIu64 ",\"inFlight\":%zu,\"maxQueueDelayNs\":%" PRId64 "}",
            d->name, d->rx_pkts, d->rx_bytes, d->loss_drops, d->queue_drops, d->overflow_drops, d->tx_pkts,
            d->tx_bytes, d->write_errs, d->count, d->max_backlog_ns);
  }
  fprintf(out, "}\n");
  fflush(out);
}

static dir_t *dir_by_name(const char *name) {
  if (strcmp(name, "a2b") == 0) return &dirs[0];
  if (strcmp(name, "b2a") == 0) return &dirs[1];
  return NULL;
}

/* Applies one parameter; returns 0 on success. Shared by argv parsing and the `set` command. */
static int set_param(dir_t *d, const char *key, const char *val) {
  char *end;
  errno = 0;
  if (strcmp(key, "trace") == 0) {
    load_trace(d, val);
    return 0;
  }
  double v = strtod(val, &end);
  if (errno || *end || v < 0) return -1;
  if (strcmp(key, "rate-bps") == 0) {
    d->rate_bps = v;
    if (d->trace) {
      free(d->trace);
      d->trace = NULL;
      d->ntrace = 0;
    }
  } else if (strcmp(key, "delay-ns") == 0) d->delay_ns = (int64_t)v;
  else if (strcmp(key, "loss") == 0) {
    if (v > 1) return -1;
    d->loss = v;
  } else if (strcmp(key, "queue-bytes") == 0) d->qlimit_bytes = (uint64_t)v;
  else if (strcmp(key, "queue-ns") == 0) d->qlimit_ns = (int64_t)v;
  else return -1;
  return 0;
}

static void handle_command(char *line) {
  char *cmd = strtok(line, " \t\r\n");
  if (!cmd) return;
  if (strcmp(cmd, "stats") == 0) {
    print_stats(stdout);
  } else if (strcmp(cmd, "quit") == 0) {
    print_stats(stdout);
    exit(0);
  } else if (strcmp(cmd, "set") == 0) {
    char *dn = strtok(NULL, " \t\r\n"), *key = strtok(NULL, " \t\r\n"), *val = strtok(NULL, " \t\r\n");
    dir_t *d = dn ? dir_by_name(dn) : NULL;
    if (!d || !key || !val || set_param(d, key, val) != 0) {
      printf("{\"type\":\"error\",\"message\":\"bad set command\"}\n");
    } else {
      printf("{\"type\":\"ok\"}\n");
    }
    fflush(stdout);
  } else {
    printf("{\"type\":\"error\",\"message\":\"unknown command\"}\n");
    fflush(stdout);
  }
}

static void on_signal(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv) {
  const char *ns_a = NULL, *ns_b = NULL, *dev = "wan0";
  uint64_t seed = 1;
  int realtime = 1;
  dir_t *cur = NULL;
  dirs[0].name = "a2b";
  dirs[1].name = "b2a";
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc) fail("missing value for an option");
    const char *v = argv[++i];
    if (strcmp(k, "--ns-a") == 0) ns_a = v;
    else if (strcmp(k, "--ns-b") == 0) ns_b = v;
    else if (strcmp(k, "--dev") == 0) dev = v;
    else if (strcmp(k, "--seed") == 0) seed = strtoull(v, NULL, 10);
    else if (strcmp(k, "--realtime") == 0) realtime = strcmp(v, "0") != 0;
    else if (strcmp(k, "--dir") == 0) {
      cur = dir_by_name(v);
      if (!cur) fail("--dir must be a2b or b2a");
    } else if (strncmp(k, "--", 2) == 0 && cur) {
      if (set_param(cur, k + 2, v) != 0) {
        fprintf(stderr, "wan-forwarder: bad value for %s: %s\n", k, v);
        exit(2);
      }
    } else {
      fprintf(stderr, "wan-forwarder: unknown option %s\n", k);
      exit(2);
    }
  }
  if (!ns_a || !ns_b) fail("--ns-a and --ns-b are required");
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  prctl(PR_SET_TIMERSLACK, 1UL); /* wake up on time: the delay line needs microseconds, not 50 us slack */
  /* The forwarder plays a network device: on a busy host, a late wake-up turns into a burst that
     overflows the emulated queue, or into delay the link was not configured with. SCHED_FIFO (the
     kernel's RT throttling still caps it at 95% of a CPU) keeps it on time; else a better nice. */
  const char *sched = "normal";
  if (realtime) {
    struct sched_param sp = {.sched_priority = 10};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) == 0) sched = "fifo";
    else if (setpriority(PRIO_PROCESS, 0, -10) == 0) sched = "nice-10";
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  epoch_ns = now_ns();
  dirs[0].rng = splitmix(seed * 2 + 1);
  dirs[1].rng = splitmix(seed * 2 + 2);
  int fa = open_tun_in(ns_a, dev, 0);
  int fb = open_tun_in(ns_b, dev, 0);
  dirs[0].in_fd = fa;
  dirs[0].out_fd = fb;
  dirs[1].in_fd = fb;
  dirs[1].out_fd = fa;
  ring_grow(&dirs[0]);
  ring_grow(&dirs[1]);
  printf("{\"type\":\"ready\",\"pid\":%d,\"scheduling\":\"%s\"}\n", (int)getpid(), sched);
  fflush(stdout);

  char line[4096];
  size_t line_len = 0;
  struct pollfd pfd[3] = {{fa, POLLIN, 0}, {fb, POLLIN, 0}, {0, POLLIN, 0}};
  for (;;) {
    int64_t now = now_ns();
    deliver_due(&dirs[0], now);
    deliver_due(&dirs[1], now);
    int64_t next = -1;
    for (int i = 0; i < 2; i++) {
      dir_t *d = &dirs[i];
      if (d->count > 0 && (next < 0 || d->deliver[d->head] < next)) next = d->deliver[d->head];
    }
    struct timespec ts, *tsp = NULL;
    if (next >= 0) {
      int64_t wait = next - now_ns();
      if (wait < 0) wait = 0;
      ts.tv_sec = wait / 1000000000LL;
      ts.tv_nsec = wait % 1000000000LL;
      tsp = &ts;
    }
    int n = ppoll(pfd, 3, tsp, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("ppoll");
    }
    if (n == 0) continue;
    if (pfd[0].revents & POLLIN) ingest(&dirs[0]);
    if (pfd[1].revents & POLLIN) ingest(&dirs[1]);
    if ((pfd[0].revents | pfd[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) fail("tun device went away");
    if (pfd[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(0, line + line_len, sizeof line - 1 - line_len);
      if (r <= 0) return 0; /* parent closed stdin: tear down */
      line_len += (size_t)r;
      line[line_len] = 0;
      char *nl;
      while ((nl = memchr(line, '\n', line_len)) != NULL) {
        *nl = 0;
        size_t used = (size_t)(nl - line) + 1;
        handle_command(line);
        memmove(line, line + used, line_len - used);
        line_len -= used;
        line[line_len] = 0;
      }
      if (line_len == sizeof line - 1) line_len = 0; /* absurd line: discard */
    }
  }
}
