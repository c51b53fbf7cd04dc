/*
 * pair_config.c - PAIR.conf through libinih.
 *
 * inih hands us one key at a time and, on failure, only the number of the
 * first bad line. To name the line of a bad value ourselves we feed inih
 * through our own line reader, which counts lines (one line per call) and
 * cuts over-long lines (inih's limit) with an error of its own. Each
 * section has a table of keys: what is required, how a value is checked,
 * where it goes. Unknown sections and keys are errors, so a typo cannot
 * silently leave a default in place.
 */
#include "pair_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_num.h"

enum section {
	SEC_NONE,
	SEC_PAIR,
	SEC_HOST,
	SEC_WITNESS,
	SEC_TIMEOUTS,
	SEC_GUEST,
	SEC_COUNT
};

struct parse {
	struct colo_pair_config *cfg;
	const char *text;
	size_t len, pos;
	unsigned int line;	  /* of the line inih is on */
	unsigned int header_line; /* of the last [section] line */
	bool new_header;	  /* one came since the last key */
	unsigned int err_line;
	char section[COLO_PAIR_PATH_MAX];
	enum section sec;
	struct colo_pair_host *host;
	unsigned int sec_line[SEC_COUNT];
	bool indented;	      /* inih's line starts with a blank */
	const char *last_key; /* the key of the last key line */
	char err[COLO_PAIR_ERR_MAX];
};

/* Keeps the first error in file order (inih goes on after an error). */
static void fail(struct parse *p, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct parse *p, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->err_line && p->err_line <= line)
		return;
	p->err_line = line;
	n = snprintf(p->err, sizeof(p->err), "%s:%u: ", p->cfg->file, line);
	if (n < 0 || (size_t)n >= sizeof(p->err))
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, sizeof(p->err) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- value checkers: 0, or -1 with a reason */

typedef int (*check_fn)(const char *v, void *dst, size_t size,
			const char **why);

static int set_str(const char *v, void *dst, size_t size, const char **why)
{
	size_t n = strlen(v);

	if (!n) {
		*why = "empty value";
		return -1;
	}
	if (n >= size) {
		*why = "value too long";
		return -1;
	}
	memcpy(dst, v, n + 1);
	return 0;
}

static int set_name(const char *v, void *dst, size_t size, const char **why)
{
	for (const char *c = v; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_')) {
			*why = "only letters, digits, '-' and '_' allowed";
			return -1;
		}
	return set_str(v, dst, size, why);
}

static int set_addr(const char *v, void *dst, size_t size, const char **why)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, v, buf) != 1 &&
	    inet_pton(AF_INET6, v, buf) != 1) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	return set_str(v, dst, size, why);
}

static int set_ifname(const char *v, void *dst, size_t size, const char **why)
{
	if (strpbrk(v, "/: \t") || !strcmp(v, ".") || !strcmp(v, "..")) {
		*why = "not an interface name";
		return -1;
	}
	if (strlen(v) >= IFNAMSIZ) {
		*why = "interface names have at most 15 characters";
		return -1;
	}
	return set_str(v, dst, size, why);
}

static int set_path(const char *v, void *dst, size_t size, const char **why)
{
	if (v[0] != '/') {
		*why = "not an absolute path";
		return -1;
	}
	return set_str(v, dst, size, why);
}

static int set_port(const char *v, void *dst, size_t size, const char **why)
{
	uint64_t n;

	(void)size;
	if (colo_parse_u64(v, 65534, &n) || n == 0) {
		*why = "not a port number (1-65534)";
		return -1;
	}
	*(uint16_t *)dst = (uint16_t)n;
	return 0;
}

/* Milliseconds: 10 ms to 10 minutes; the sanity of their ratios is
 * checked once every value is known. */
static int set_ms(const char *v, void *dst, size_t size, const char **why)
{
	uint64_t n;

	(void)size;
	if (colo_parse_u64(v, 600000, &n) || n < 10) {
		*why = "not a number of milliseconds (10-600000)";
		return -1;
	}
	*(uint32_t *)dst = (uint32_t)n;
	return 0;
}

static int set_kind(const char *v, void *dst, size_t size, const char **why)
{
	(void)size;
	if (!strcmp(v, "netns")) {
		*(enum colo_guest_kind *)dst = COLO_GUEST_NETNS;
		return 0;
	}
	if (!strcmp(v, "vm")) {
		*(enum colo_guest_kind *)dst = COLO_GUEST_VM;
		return 0;
	}
	*why = "unknown guest kind (known: netns, vm)";
	return -1;
}

/* A QEMU binary: a name looked up in PATH, or an absolute path. */
static int set_program(const char *v, void *dst, size_t size, const char **why)
{
	if (v[0] != '/' && strchr(v, '/')) {
		*why = "a program name or an absolute path";
		return -1;
	}
	return set_str(v, dst, size, why);
}

/* The checkpoint interval: as set_ms, and 0 turns it off. */
static int set_interval(const char *v, void *dst, size_t size, const char **why)
{
	if (!strcmp(v, "0")) {
		*(uint32_t *)dst = 0;
		return 0;
	}
	return set_ms(v, dst, size, why);
}

/* One line of words, added to those of the lines before it. */
static int add_words(const char *v, void *dst, size_t size, const char **why)
{
	(void)size;
	return colo_words_append(dst, v, why);
}

/* Who must give a key: every kind of guest, or one. */
enum need { OPTIONAL, REQUIRED, NETNS_ONLY };

struct key {
	const char *name;
	check_fn set;
	size_t off, size;
	enum need required;
	bool lines; /* indented lines after it continue it */
};

#define CK(f, fn, req)                                                         \
	{                                                                      \
#f, fn, offsetof(struct colo_pair_config, f),                  \
			sizeof(((struct colo_pair_config *)0)->f), req, false  \
	}
#define HK(k, f, fn, req)                                                      \
	{                                                                      \
		k, fn, offsetof(struct colo_pair_host, f),                     \
			sizeof(((struct colo_pair_host *)0)->f), req, false    \
	}

static const struct key pair_keys[] = {
	CK(name, set_name, REQUIRED),	 CK(link_port, set_port, OPTIONAL),
	CK(run_dir, set_path, OPTIONAL), CK(authkey, set_path, OPTIONAL),
	CK(hook, set_path, OPTIONAL),	 { NULL, NULL, 0, 0, OPTIONAL, false },
};
static const struct key host_keys[] = {
	HK("link", link, set_addr, REQUIRED),
	HK("ring", ring, set_addr, REQUIRED),
	HK("client", client_if, set_ifname, REQUIRED),
	/* a VM's NIC is on the proxy's own socket, not an interface */
	HK("guest", guest_if, set_ifname, NETNS_ONLY),
	HK("credentials", credentials, set_path, OPTIONAL),
	{ NULL, NULL, 0, 0, OPTIONAL, false },
};
static const struct key witness_keys[] = {
	{ "address", set_addr, offsetof(struct colo_pair_config, witness),
	  COLO_PAIR_ADDR_MAX, REQUIRED, false },
	{ "port", set_port, offsetof(struct colo_pair_config, witness_port),
	  sizeof(uint16_t), OPTIONAL, false },
	{ NULL, NULL, 0, 0, OPTIONAL, false },
};
static const struct key timeout_keys[] = {
	CK(lease_ms, set_ms, OPTIONAL),	       CK(margin_ms, set_ms, OPTIONAL),
	CK(token_ms, set_ms, OPTIONAL),	       CK(qdevice_ms, set_ms, OPTIONAL),
	{ NULL, NULL, 0, 0, OPTIONAL, false },
};
/* The keys after disk are kind = vm's (validate() refuses them with
 * netns): keep them last. */
static const struct key guest_keys[] = {
	{ "kind", set_kind, offsetof(struct colo_pair_config, guest_kind),
	  sizeof(enum colo_guest_kind), OPTIONAL, false },
	CK(disk, set_path, OPTIONAL),
	{ "qemu_args", add_words, offsetof(struct colo_pair_config, qemu_args),
	  sizeof(struct colo_words), OPTIONAL, true },
	CK(ram_dir, set_path, OPTIONAL),
	CK(vm_port, set_port, OPTIONAL),
	CK(qemu, set_program, OPTIONAL),
	CK(interval_ms, set_interval, OPTIONAL),
	{ NULL, NULL, 0, 0, OPTIONAL, false },
};
#define GUEST_VM_KEYS 2 /* index of the first key of kind = vm only */

static const struct {
	const char *name;
	const struct key *keys;
} sections[SEC_COUNT] = {
	[SEC_PAIR] = { "pair", pair_keys },
	[SEC_HOST] = { "host", host_keys },
	[SEC_WITNESS] = { "witness", witness_keys },
	[SEC_TIMEOUTS] = { "timeouts", timeout_keys },
	[SEC_GUEST] = { "guest", guest_keys },
};

/* The seen-bits of sections other than hosts share cfg->seen: 8 bits per
 * section, one per key. */
static unsigned int sec_shift(enum section s)
{
	return 8u * (unsigned int)(s - SEC_PAIR);
}

/* A new section header (inih reports only keys, so we notice the name
 * changing). Returns false when the header is refused. */
static bool enter_section(struct parse *p, const char *section)
{
	struct colo_pair_config *cfg = p->cfg;
	const char *hname;

	unsigned int line = p->header_line ? p->header_line : p->line;

	snprintf(p->section, sizeof(p->section), "%s", section);
	p->host = NULL;
	p->sec = SEC_NONE;
	if (!strncmp(section, "host ", 5)) {
		hname = section + 5;
		for (unsigned int i = 0; i < cfg->nhosts; i++)
			if (!strcmp(cfg->host[i].name, hname)) {
				fail(p, line, "[%s]: host given twice",
				     section);
				return false;
			}
		if (cfg->nhosts == 2) {
			fail(p, line, "[%s]: a pair has two hosts", section);
			return false;
		}
		p->host = &cfg->host[cfg->nhosts];
		const char *why = NULL;
		if (set_name(hname, p->host->name, sizeof(p->host->name),
			     &why)) {
			fail(p, line, "[%s]: host name: %s", section, why);
			p->host = NULL;
			return false;
		}
		p->host->nodeid = ++cfg->nhosts;
		p->host->line = line;
		p->sec = SEC_HOST;
		return true;
	}
	for (int s = SEC_PAIR; s < SEC_COUNT; s++)
		if (s != SEC_HOST && !strcmp(section, sections[s].name)) {
			if (p->sec_line[s]) {
				fail(p, line,
				     "[%s]: section given twice (first at "
				     "line %u)",
				     section, p->sec_line[s]);
				return false;
			}
			p->sec = (enum section)s;
			p->sec_line[s] = line;
			return true;
		}
	fail(p, line,
	     "[%s]: unknown section (known: pair, host NAME, witness, "
	     "timeouts, guest)",
	     section);
	return false;
}

static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct parse *p = user;
	const struct key *k;
	uint64_t *seen, bit;
	char *base;
	const char *why = NULL;

	if (!*section) {
		fail(p, p->line, "%s: key outside any section", name);
		return 0;
	}
	if ((p->new_header || strcmp(section, p->section)) &&
	    !enter_section(p, section)) {
		p->new_header = false;
		return 0;
	}
	p->new_header = false;
	if (p->sec == SEC_NONE)
		return 0; /* the refused section's error is already kept */
	k = sections[p->sec].keys;
	for (bit = 0; k->name && strcmp(k->name, name); k++, bit++)
		;
	if (!k->name) {
		fail(p, p->line, "[%s] %s: unknown key", section, name);
		return 0;
	}
	if (p->sec == SEC_HOST) {
		seen = &p->host->seen;
		base = (char *)p->host;
	} else {
		seen = &p->cfg->seen;
		bit += sec_shift(p->sec);
		base = (char *)p->cfg;
	}
	/* inih hands an indented line after a key over as that key again:
	 * a continuation for a key of several lines, a repeat otherwise */
	if ((*seen & (1ull << bit)) &&
	    !(k->lines && p->indented && p->last_key == k->name)) {
		fail(p, p->line, "[%s] %s: key given twice", section, name);
		return 0;
	}
	*seen |= 1ull << bit;
	p->last_key = k->name;
	if (k->set(value, base + k->off, k->size, &why)) {
		fail(p, p->line, "[%s] %s: %s", section, name, why);
		return 0;
	}
	return 1;
}

/* inih's reader: one line per call, so p->line is the line inih parses.
 * A line longer than inih's buffer is cut (with an error of ours) rather
 * than split into two lines that would shift every later line number. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	size_t max = num > 2 ? (size_t)num - 2 : 0, n = 0;
	const char *s = p->text + p->pos;
	size_t left = p->len - p->pos;
	const char *nl;

	if (!left)
		return NULL;
	p->line++;
	nl = memchr(s, '\n', left);
	n = nl ? (size_t)(nl - s) : left;
	p->pos += nl ? n + 1 : n;
	p->indented = n && (s[0] == ' ' || s[0] == '\t');
	if (n > max) {
		fail(p, p->line, "line longer than %zu bytes", max);
		n = max;
	}
	memcpy(str, s, n);
	for (size_t i = 0; i < n; i++)
		if (str[i] != ' ' && str[i] != '\t') {
			/* inih reports sections only through their keys: a
			 * header repeating the current one would go unseen */
			if (str[i] == '[') {
				p->new_header = true;
				p->header_line = p->line;
			}
			break;
		}
	str[n] = '\n';
	str[n + 1] = '\0';
	/* inih sees C strings: a NUL byte would hide the rest of the line */
	if (memchr(str, '\0', n))
		fail(p, p->line, "NUL byte in the line");
	return str;
}

static void need(struct parse *p, unsigned int line, const char *section,
		 const struct key *keys, uint64_t seen, unsigned int shift)
{
	unsigned int bit = 0;
	bool netns = p->cfg->guest_kind == COLO_GUEST_NETNS;

	for (const struct key *k = keys; k->name; k++, bit++)
		if ((k->required == REQUIRED ||
		     (k->required == NETNS_ONLY && netns)) &&
		    !(seen & (1ull << (bit + shift))))
			fail(p, line, "[%s]: missing key '%s'", section,
			     k->name);
}

/* kind = vm's own rules; netns refuses vm's keys. */
static void validate_guest(struct parse *p, unsigned int line)
{
	struct colo_pair_config *cfg = p->cfg;
	unsigned int shift = sec_shift(SEC_GUEST), bit = GUEST_VM_KEYS;

	if (cfg->guest_kind == COLO_GUEST_NETNS) {
		for (const struct key *k = &guest_keys[bit]; k->name;
		     k++, bit++)
			if (cfg->seen & (1ull << (bit + shift)))
				fail(p, line, "[guest] %s: only with kind = vm",
				     k->name);
		return;
	}
	if (!cfg->qemu_args.n)
		fail(p, line,
		     "[guest]: missing key 'qemu_args' (kind = vm: the "
		     "guest's QEMU arguments)");
	/* whoever reaches the frame link owns the guest: TLS, always */
	for (unsigned int i = 0; i < cfg->nhosts; i++)
		if (!cfg->host[i].credentials[0])
			fail(p, cfg->host[i].line,
			     "[host %s]: missing key 'credentials' (kind = "
			     "vm runs the frame link and migration in TLS)",
			     cfg->host[i].name);
	if (!cfg->vm_port && cfg->link_port + 2u > 65535u)
		fail(p, line, "[guest]: link_port + 2 is no port: set vm_port");
	else if (!cfg->vm_port)
		cfg->vm_port = (uint16_t)(cfg->link_port + 2u);
	if (cfg->vm_port == cfg->link_port ||
	    cfg->vm_port == cfg->link_port + 1u)
		fail(p, line,
		     "[guest] vm_port: %u is the proxy's or blk's link "
		     "(link_port, link_port + 1)",
		     cfg->vm_port);
}

/* Whole-file rules, checked once every key is in. */
static void validate(struct parse *p)
{
	struct colo_pair_config *cfg = p->cfg;
	unsigned int end = p->line + 1;

	for (int s = SEC_PAIR; s < SEC_COUNT; s++) {
		if (s == SEC_HOST)
			continue;
		if (p->sec_line[s])
			need(p, p->sec_line[s], sections[s].name,
			     sections[s].keys, cfg->seen,
			     sec_shift((enum section)s));
		else if (s == SEC_PAIR || s == SEC_WITNESS)
			/* inih shows a section only through its keys: an
			 * empty one looks the same as none */
			fail(p, end, "missing section [%s] (with key '%s')",
			     sections[s].name, sections[s].keys[0].name);
	}
	for (unsigned int i = 0; i < cfg->nhosts; i++) {
		char sec[COLO_PAIR_NAME_MAX + 8];

		snprintf(sec, sizeof(sec), "host %s", cfg->host[i].name);
		need(p, cfg->host[i].line, sec, host_keys, cfg->host[i].seen,
		     0);
	}
	if (cfg->nhosts != 2) {
		fail(p, end, "a pair needs two [host NAME] sections, found %u",
		     cfg->nhosts);
		return;
	}
	validate_guest(p,
		       p->sec_line[SEC_GUEST] ? p->sec_line[SEC_GUEST] : end);
	if (!strcmp(cfg->host[0].ring, cfg->host[1].ring))
		fail(p, cfg->host[1].line,
		     "[host %s] ring: same address as host %s",
		     cfg->host[1].name, cfg->host[0].name);
	if (!strcmp(cfg->host[0].link, cfg->host[1].link))
		fail(p, cfg->host[1].line,
		     "[host %s] link: same address as host %s",
		     cfg->host[1].name, cfg->host[0].name);
	/* The lease is renewed every lease/4 through corosync; corosync
	 * needs about a token to notice a lost node. A lease shorter than a
	 * token would lapse in every membership change; a margin of 0 would
	 * trust two hosts' clocks to run at exactly the same rate. */
	if (cfg->lease_ms < 100)
		fail(p,
		     p->sec_line[SEC_TIMEOUTS] ? p->sec_line[SEC_TIMEOUTS]
					       : end,
		     "[timeouts] lease_ms: at least 100");
	if (cfg->margin_ms < cfg->lease_ms / 10)
		fail(p,
		     p->sec_line[SEC_TIMEOUTS] ? p->sec_line[SEC_TIMEOUTS]
					       : end,
		     "[timeouts] margin_ms: at least a tenth of lease_ms "
		     "(%u)",
		     cfg->lease_ms / 10);
}

int colo_pair_parse(const char *file, const char *text, size_t len,
		    struct colo_pair_config *cfg, char *err, size_t errlen)
{
	struct parse p = { .cfg = cfg, .text = text, .len = len };
	int r;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->file, sizeof(cfg->file), "%s", file);
	cfg->link_port = 7070;
	snprintf(cfg->run_dir, sizeof(cfg->run_dir), "/run/colo");
	snprintf(cfg->authkey, sizeof(cfg->authkey), "/etc/corosync/authkey");
	cfg->witness_port = 5403;
	/* A takeover comes about 1.5 tokens (corosync's token and the
	 * consensus colo up writes, half a token) + lease + margin after
	 * the primary's death: 0.8 s (colo-up(1), TIMING). A 200 ms token
	 * held under the VM tests' load once knet's pings were set apart
	 * from it (no excess token timeout in the soak); 150 ms did not.
	 * The lease stays above token + consensus, so it outlives a ring
	 * re-formation; the margin, unless set, is a quarter of the lease
	 * (after parsing). */
	cfg->lease_ms = 400;
	cfg->token_ms = 200;
	cfg->guest_kind = COLO_GUEST_NETNS;
	snprintf(cfg->ram_dir, sizeof(cfg->ram_dir), "/dev/shm/colo");
	cfg->interval_ms = 20000; /* colo vm's (and QEMU's COLO's) */

	r = ini_parse_stream(read_line, &p, on_key, &p);
	if (r == -2) {
		snprintf(err, errlen, "%s: out of memory", file);
		return -1;
	}
	if (r > 0 && (!p.err_line || (unsigned int)r < p.err_line)) {
		p.err_line = 0;
		fail(&p, (unsigned int)r,
		     "syntax error (expected [section], key = value or a "
		     "comment)");
	}
	if (!cfg->margin_ms)
		cfg->margin_ms = cfg->lease_ms / 4;
	if (!p.err_line)
		validate(&p);
	if (p.err_line) {
		snprintf(err, errlen, "%s", p.err);
		return -1;
	}
	return 0;
}

int colo_pair_load(const char *path, struct colo_pair_config *cfg, char *err,
		   size_t errlen)
{
	enum { MAX = 1 << 20 };
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	int r;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(MAX + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, MAX + 1, f);
	if (ferror(f) || n > MAX) {
		snprintf(err, errlen, "%s: %s", path,
			 ferror(f) ? "read error" : "larger than 1 MiB");
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	r = colo_pair_parse(path, buf, n, cfg, err, errlen);
	free(buf);
	return r;
}

static bool addr_is_local(const struct ifaddrs *ifa, const char *addr)
{
	unsigned char want[16], have[16];
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;

	if (inet_pton(fam, addr, want) != 1)
		return false;
	for (; ifa; ifa = ifa->ifa_next) {
		if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != fam)
			continue;
		const void *a =
			fam == AF_INET
				? (const void *)&(
					  (struct sockaddr_in *)ifa->ifa_addr)
					  ->sin_addr
				: (const void *)&(
					  (struct sockaddr_in6 *)ifa->ifa_addr)
					  ->sin6_addr;
		memcpy(have, a, fam == AF_INET ? 4 : 16);
		if (!memcmp(have, want, fam == AF_INET ? 4 : 16))
			return true;
	}
	return false;
}

int colo_pair_find_self(const struct colo_pair_config *cfg, const char *name,
			char *err, size_t errlen)
{
	struct ifaddrs *ifa;
	int found = -1;

	if (name) {
		for (int i = 0; i < 2; i++)
			if (!strcmp(cfg->host[i].name, name))
				return i;
		snprintf(err, errlen, "%s: no [host %s]", cfg->file, name);
		return -1;
	}
	if (getifaddrs(&ifa)) {
		snprintf(err, errlen, "getifaddrs: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 2; i++)
		if (addr_is_local(ifa, cfg->host[i].ring) ||
		    addr_is_local(ifa, cfg->host[i].link)) {
			if (found >= 0) {
				snprintf(err, errlen,
					 "both hosts' addresses are local: "
					 "say which host this is (--host)");
				freeifaddrs(ifa);
				return -1;
			}
			found = i;
		}
	freeifaddrs(ifa);
	if (found < 0)
		snprintf(err, errlen,
			 "%s: no host's ring or link address is on this "
			 "machine (--host NAME to say which)",
			 cfg->file);
	return found;
}

int colo_pair_open(const char *prog, const char *path, const char *host,
		   struct colo_pair_config *cfg)
{
	char err[COLO_PAIR_ERR_MAX];
	int self;

	if (colo_pair_load(path, cfg, err, sizeof(err)) ||
	    (self = colo_pair_find_self(cfg, host, err, sizeof(err))) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return -1;
	}
	return self;
}
