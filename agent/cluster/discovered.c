/* What discovery reports (node.h "Discovery"): addresses of agents to
 * contact, kept per source. The node gossips to every contact that is not
 * already a known member's address; the answer names the agent (node id),
 * and from then on it is a member like one from --peers. A contact a
 * source stops listing is forgotten as a contact; a member is never
 * removed by discovery.
 *
 * The current source, for status and metrics, is the first that answers
 * of Nacos, DNS and the static list, in that order; each switch is logged
 * once. */
#include "cluster/internal.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

const char *mq_discovery_source_name(enum mq_discovery_source s) {
  switch (s) {
  case MQ_DISCOVERY_STATIC:
    return "static";
  case MQ_DISCOVERY_DNS:
    return "dns";
  case MQ_DISCOVERY_NACOS:
    return "nacos";
  }
  return "unknown";
}

static int post_mail(struct mq_node *n, enum mq_discovery_source source, int rc, const void *data,
                     size_t len) {
  if ((unsigned)source >= MQ_DISCOVERY_SOURCES)
    return MQ_EINVAL;
  struct net_mail *nm = malloc(sizeof *nm + len);
  if (!nm)
    return MQ_ENOMEM;
  memset(nm, 0, sizeof *nm);
  nm->mail.kind = MAIL_DISCOVERED;
  nm->call_tag = (uint64_t)source;
  nm->rc = rc;
  nm->len = len;
  if (len)
    memcpy(nm->data, data, len);
  if (mq_mailbox_push(&n->mailbox, &nm->mail)) {
    free(nm);
    return MQ_EUNAVAIL;
  }
  return 0;
}

int mq_node_discovered(struct mq_node *n, enum mq_discovery_source source,
                       const struct mq_discovered *peers, size_t count) {
  if (count > MQ_MAX_CONTACTS)
    count = MQ_MAX_CONTACTS;
  return post_mail(n, source, 0, peers, count * sizeof *peers);
}

void mq_node_discovery_failed(struct mq_node *n, enum mq_discovery_source source, const char *why) {
  char text[256];
  snprintf(text, sizeof text, "%s", why ? why : "");
  post_mail(n, source, MQ_EUNAVAIL, text, strlen(text) + 1);
}

static void pick_current(struct mq_node *n) {
  int cur = MQ_DISCOVERY_STATIC;
  if (n->disc[MQ_DISCOVERY_NACOS].ok)
    cur = MQ_DISCOVERY_NACOS;
  else if (n->disc[MQ_DISCOVERY_DNS].ok)
    cur = MQ_DISCOVERY_DNS;
  if (cur == n->disc_current)
    return;
  mq_info("core", "discovery: now from %s (was %s)",
          mq_discovery_source_name((enum mq_discovery_source)cur),
          mq_discovery_source_name((enum mq_discovery_source)n->disc_current));
  n->disc_current = cur;
  atomic_store_explicit(&n->m_disc_source, (int)cur, memory_order_relaxed);
}

static struct contact *contact_by_addr(struct mq_node *n, const char *addr) {
  for (int i = 0; i < n->n_contacts; i++)
    if (strcmp(n->contacts[i].addr, addr) == 0)
      return &n->contacts[i];
  return NULL;
}

static void update_contacts(struct mq_node *n, int source, const struct mq_discovered *p,
                            size_t k) {
  uint8_t bit = (uint8_t)(1u << source);
  for (int i = 0; i < n->n_contacts; i++)
    n->contacts[i].sources &= (uint8_t)~bit;
  for (size_t i = 0; i < k; i++) {
    if (!p[i].addr[0] || strcmp(p[i].addr, n->members[0].addr) == 0 ||
        (p[i].node_id[0] && strcmp(p[i].node_id, n->cfg->node_id) == 0))
      continue; /* this agent */
    struct contact *c = contact_by_addr(n, p[i].addr);
    if (!c) {
      if (n->n_contacts == MQ_MAX_CONTACTS)
        continue;
      c = &n->contacts[n->n_contacts++];
      memset(c, 0, sizeof *c);
      snprintf(c->addr, sizeof c->addr, "%s", p[i].addr);
    }
    c->sources |= bit;
  }
  /* forget contacts no source lists any more (members stay) */
  int w = 0;
  for (int i = 0; i < n->n_contacts; i++)
    if (n->contacts[i].sources)
      n->contacts[w++] = n->contacts[i];
  n->n_contacts = w;
}

void discovered_on_mail(struct mq_node *n, struct net_mail *nm) {
  int source = (int)nm->call_tag;
  struct disc_state *d = &n->disc[source];
  if (nm->rc) {
    const char *why = nm->len ? (const char *)nm->data : "";
    if (d->ok || !d->failed_once)
      mq_warn("core", "discovery: %s does not answer: %s",
              mq_discovery_source_name((enum mq_discovery_source)source), why);
    d->ok = false;
    d->failed_once = true;
    d->errors++;
    snprintf(d->why, sizeof d->why, "%s", why);
    atomic_fetch_add_explicit(&n->m_disc_errors[source], 1, memory_order_relaxed);
  } else {
    size_t k = nm->len / sizeof(struct mq_discovered);
    if (!d->ok && d->failed_once)
      mq_info("core", "discovery: %s answers again",
              mq_discovery_source_name((enum mq_discovery_source)source));
    d->ok = true;
    d->why[0] = '\0';
    d->found = k;
    d->last_ok_wall_ms = node_wall(n);
    atomic_store_explicit(&n->m_disc_last_ok_ms[source], d->last_ok_wall_ms, memory_order_relaxed);
    update_contacts(n, source, (const struct mq_discovered *)nm->data, k);
  }
  pick_current(n);
  free(nm);
}

bool discovered_is_member_addr(struct mq_node *n, const char *addr) {
  for (int i = 0; i < n->n_members; i++)
    if (strcmp(n->members[i].addr, addr) == 0)
      return true;
  return false;
}
