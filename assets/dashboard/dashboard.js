// The dashboard's pages. Every value shown comes from a supplier's file and is hostile: it is
// only ever set as text (textContent, text nodes), never parsed as HTML.
'use strict';

/** An element with attributes and children; strings become text nodes. */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child === null ? '' : String(child)));
  }
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

async function getJson(path) {
  const res = await fetch(path, { credentials: 'same-origin' });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `${res.status}`);
  return body;
}

const number = (n) => Number(n).toLocaleString('en');
const when = (iso) => (iso ? iso.slice(0, 19).replace('T', ' ') : '');
const ms = (n) => (n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${n} ms`);

/** A bar chart: one row per item, label, a bar as wide as its share of the largest, the figure. */
function bars(container, items) {
  container.replaceChildren();
  const max = Math.max(1, ...items.map((i) => i.value));
  for (const item of items) {
    const fill = el('div', { class: 'fill' });
    // CSSOM, not a style attribute: the Content-Security-Policy forbids inline styles.
    fill.style.width = `${(100 * item.value) / max}%`;
    container.append(
      el(
        'div',
        { class: 'row', title: item.title },
        el('span', {}, item.label),
        el('div', { class: 'track' }, fill),
        el('span', { class: 'n' }, item.shown),
      ),
    );
  }
  if (items.length === 0) container.append(el('p', {}, 'none'));
}

/** Server-sent events: calls onLoad(id) whenever a load changes; the dot in the header says whether they flow. */
function live(onLoad) {
  if (!window.EventSource) return;
  const source = new EventSource('/api/events');
  const dot = document.getElementById('live');
  source.addEventListener('open', () => dot.classList.add('on'));
  source.addEventListener('error', () => dot.classList.remove('on'));
  source.addEventListener('load', (event) => onLoad(Number(event.data)));
}

async function showScope() {
  const about = await getJson('/api/about');
  setText(
    'scope',
    [
      about.tenant ? `tenant ${about.tenant}` : 'all tenants',
      about.allowActions ? 'actions allowed' : 'read-only',
    ].join(' · '),
  );
  return about;
}

async function loadsPage() {
  const about = await showScope();
  const params = new URLSearchParams(location.search);
  const tenant = document.getElementById('filter-tenant');
  const status = document.getElementById('filter-status');
  tenant.value = params.get('tenant') || about.tenant || '';
  if (about.tenant) tenant.disabled = true;
  status.value = params.get('status') || '';
  const body = document.querySelector('#loads tbody');

  async function refresh() {
    const query = new URLSearchParams();
    if (tenant.value) query.set('tenant', tenant.value);
    if (status.value) query.set('status', status.value);
    try {
      const loads = await getJson(`/api/loads?${query}`);
      setText('message', '');
      body.replaceChildren(
        ...loads.map((l) => {
          const c = l.counts;
          const shownStatus = l.progress ? `${l.status} (${l.progress.step} ${progressOf(l.progress)})` : l.status;
          return el(
            'tr',
            { 'data-load': l.id },
            el('td', {}, el('a', { href: `/loads/${l.id}` }, String(l.id))),
            el('td', {}, when(l.createdAt)),
            el('td', {}, l.tenant),
            el('td', {}, `${l.mapping} v${l.mappingVersion}`),
            el('td', { class: `status-${l.status}` }, shownStatus),
            el('td', { class: 'n' }, number(c.read)),
            el('td', { class: 'n' }, number(c.unparseable + c.rejected)),
            el('td', { class: 'n' }, number(c.inserted)),
            el('td', { class: 'n' }, number(c.updated)),
            el('td', { class: 'n' }, number(c.unchanged)),
            el('td', { class: 'value' }, l.source),
          );
        }),
      );
      if (loads.length === 0) body.append(el('tr', {}, el('td', { colspan: 11 }, 'no loads')));
    } catch (error) {
      setText('message', error.message);
    }
  }

  document.getElementById('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (tenant.value && !about.tenant) query.set('tenant', tenant.value);
    if (status.value) query.set('status', status.value);
    history.replaceState(null, '', query.size ? `/?${query}` : '/');
    void refresh();
  });
  await refresh();
  live(throttled(refresh));
}

function progressOf(p) {
  return p.total > 0 ? `${Math.floor((100 * p.done) / p.total)}%` : `${number(p.rows)} rows`;
}

async function loadPage() {
  const about = await showScope();
  const id = Number(location.pathname.split('/').pop());
  document.title = `pgferry — load ${id}`;
  setText('title', `Load ${id}`);
  document.getElementById('csv').setAttribute('href', `/api/loads/${id}/rejects.csv`);
  let page = 1;
  let q = '';

  async function showLoad() {
    let l;
    try {
      l = await getJson(`/api/loads/${id}`);
    } catch (error) {
      setText('message', error.message);
      return;
    }
    setText('message', l.error ? `error: ${l.error}` : '');
    const progress = l.progress ? ` — ${l.progress.step} ${progressOf(l.progress)}` : '';
    setText(
      'summary',
      `${l.status}${progress} · tenant ${l.tenant} · ${l.mapping} v${l.mappingVersion} → ${l.target} · ${l.source} · started ${when(l.createdAt)}${l.finishedAt ? `, ended ${when(l.finishedAt)}` : ''}`,
    );
    document.getElementById('summary').className = `summary status-${l.status}`;
    const c = l.counts;
    const rows = [
      ['read', c.read],
      ['  unparseable', c.unparseable],
      ['  staged', c.staged],
      ['    rejected', c.rejected],
      ['    duplicates', c.duplicates],
      ['    promoted', c.inserted + c.updated + c.unchanged],
      ['      inserted', c.inserted],
      ['      updated', c.updated],
      ['      unchanged', c.unchanged],
    ];
    document
      .querySelector('#counts tbody')
      .replaceChildren(
        ...rows.map(([name, n]) =>
          el('tr', {}, el('td', { class: 'value' }, name), el('td', { class: 'n' }, number(n))),
        ),
      );
    document
      .getElementById('reconciliation')
      .replaceChildren(
        ...l.reconciliation.map((r) =>
          el(
            'li',
            { class: r.holds ? 'holds' : 'broken' },
            `${r.equation}: ${number(r.left)} ${r.holds ? '=' : '≠'} ${number(r.right)}`,
          ),
        ),
      );
    bars(
      document.getElementById('timings'),
      l.timings.map((t) => ({ label: t.step, value: t.ms, shown: ms(t.ms) })),
    );
    bars(
      document.getElementById('reasons'),
      l.reasons.map((r) => ({
        label: `${r.rule}${r.column ? ` ${r.column}` : ''}`,
        value: r.count,
        shown: number(r.count),
        title: r.example,
      })),
    );
    setText('sql', l.compiledSql || '(not compiled yet)');
    const actions = document.getElementById('actions');
    actions.replaceChildren();
    if (
      about.allowActions &&
      ['queued', 'registered', 'staging', 'transforming', 'promoting', 'interrupted'].includes(l.status)
    ) {
      const cancel = el('button', { type: 'button' }, 'cancel this load');
      cancel.addEventListener('click', async () => {
        const res = await fetch(`/api/loads/${id}/cancel`, { method: 'POST', headers: { 'X-Pgferry-Action': '1' } });
        const body = await res.json();
        setText('message', res.ok ? `cancel: ${body.outcome}` : body.error);
        void showLoad();
      });
      actions.append(cancel);
    }
    if (about.allowActions && l.status === 'succeeded') {
      const undo = el('button', { type: 'button' }, 'roll back this load');
      undo.addEventListener('click', async () => {
        const res = await fetch(`/api/loads/${id}/rollback`, { method: 'POST', headers: { 'X-Pgferry-Action': '1' } });
        const body = await res.json();
        const conflicts =
          body.outcome === 'conflicts'
            ? `: ${body.conflicts.length} rows changed since; nothing changed (pgferry rollback --force)`
            : '';
        setText('message', res.ok ? `rollback: ${body.outcome}${conflicts}` : body.error);
        void showLoad();
      });
      actions.append(undo);
    }
  }

  async function showRejects() {
    const query = new URLSearchParams({ page: String(page) });
    if (q) query.set('q', q);
    const result = await getJson(`/api/loads/${id}/rejects?${query}`);
    document
      .querySelector('#rejects tbody')
      .replaceChildren(
        ...result.rows.map((r) =>
          el(
            'tr',
            {},
            el('td', {}, r.where || ''),
            el('td', {}, r.step),
            el('td', {}, r.rule),
            el('td', {}, r.column || ''),
            el('td', { class: 'value' }, r.value === null ? '' : r.value),
            el('td', { class: 'value' }, r.message),
          ),
        ),
      );
    const pages = Math.max(1, Math.ceil(result.total / result.pageSize));
    setText('page', `page ${result.page} of ${pages} (${number(result.total)} rejects${q ? ' found' : ''})`);
    document.getElementById('prev').disabled = page <= 1;
    document.getElementById('next').disabled = page >= pages;
  }

  document.getElementById('reject-search').addEventListener('submit', (event) => {
    event.preventDefault();
    q = document.getElementById('reject-q').value;
    page = 1;
    void showRejects();
  });
  document.getElementById('prev').addEventListener('click', () => {
    page -= 1;
    void showRejects();
  });
  document.getElementById('next').addEventListener('click', () => {
    page += 1;
    void showRejects();
  });
  await showLoad();
  await showRejects().catch((error) => setText('message', error.message));
  live((changed) => {
    if (changed === id) void showLoad().then(showRejects);
  });
}

/** fn at most once per half second, however often it is asked for: a running load notifies often. */
function throttled(fn) {
  let pending;
  return () => {
    if (pending) return;
    pending = setTimeout(() => {
      pending = undefined;
      fn().catch(() => {});
    }, 500);
  };
}

/** A table's body from rows of cells; a cell is text or a node. */
function fill(tbody, rows, columns) {
  tbody.replaceChildren(...rows.map((cells) => el('tr', {}, ...cells.map((c) => el('td', {}, c)))));
  if (rows.length === 0) tbody.append(el('tr', {}, el('td', { colspan: columns }, 'none')));
}

const loadLink = (id) => (id === null ? '' : el('a', { href: `/loads/${id}` }, String(id)));

async function syncsPage() {
  await showScope();
  const refresh = async () => {
    const syncs = await getJson('/api/syncs');
    fill(
      document.querySelector('#syncs tbody'),
      syncs.map((s) => [
        s.name,
        s.tenant,
        s.mapping,
        s.mode,
        s.schedule || 'by hand',
        s.paused ? 'paused' : '',
        s.cursor || '',
        when(s.lastRun),
        s.lastOutcome || 'never run',
        loadLink(s.lastLoad),
        when(s.nextRun),
        s.lastError || '',
      ]),
      12,
    );
  };
  await refresh().catch((error) => setText('message', error.message));
  live(throttled(refresh));
}

/** Each step's depth in the graph: 0 without prerequisites, else one more than its deepest. */
function levels(steps) {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const depth = new Map();
  const of = (step, seen) => {
    if (depth.has(step.name)) return depth.get(step.name);
    if (seen.has(step.name)) return 0;
    seen.add(step.name);
    const d = Math.max(-1, ...step.after.map((n) => (byName.has(n) ? of(byName.get(n), seen) : -1))) + 1;
    depth.set(step.name, d);
    return d;
  };
  const columns = [];
  for (const step of steps) (columns[of(step, new Set())] ||= []).push(step);
  return columns.filter(Boolean);
}

async function plansPage() {
  await showScope();
  const refresh = async () => {
    const runs = await getJson('/api/plans');
    const container = document.getElementById('plans');
    container.replaceChildren(
      ...runs.map((run) =>
        el(
          'section',
          { class: 'plan' },
          el('h2', {}, `${run.name} — run ${run.id}`),
          el(
            'p',
            { class: `status-${run.status}` },
            `${run.status}${run.dryRun ? ' (dry run)' : ''} · started ${when(run.createdAt)}${run.finishedAt ? `, ended ${when(run.finishedAt)}` : ''}`,
          ),
          el(
            'div',
            { class: 'graph' },
            ...levels(run.steps).map((column) =>
              el(
                'div',
                { class: 'level' },
                ...column.map((step) =>
                  el(
                    'div',
                    { class: `step status-${step.status}` },
                    el('strong', {}, step.name),
                    el('div', {}, `${step.kind} · ${step.status}`),
                    step.loadId === null ? '' : el('div', {}, 'load ', loadLink(step.loadId)),
                    step.after.length ? el('div', { class: 'after' }, `after ${step.after.join(', ')}`) : '',
                    step.error ? el('div', { class: 'message' }, step.error) : '',
                  ),
                ),
              ),
            ),
          ),
        ),
      ),
    );
    if (runs.length === 0) container.append(el('p', {}, 'no plan has run yet'));
  };
  await refresh().catch((error) => setText('message', error.message));
  live(throttled(refresh));
}

async function workersPage() {
  await showScope();
  const refresh = async () => {
    const workers = await getJson('/api/workers');
    setText('alive', `${workers.alive} worker${workers.alive === 1 ? '' : 's'} alive`);
    fill(
      document.querySelector('#jobs tbody'),
      workers.running.map((j) => [
        j.worker,
        j.task,
        j.key || '',
        when(j.since),
        String(j.attempts),
        j.alive ? 'yes' : 'no: handed on soon',
      ]),
      6,
    );
  };
  await refresh().catch((error) => setText('message', error.message));
  live(throttled(refresh));
}

const pages = { loads: loadsPage, load: loadPage, syncs: syncsPage, plans: plansPage, workers: workersPage };

/** The page an address names: `/` the loads, `/loads/ID` a load, `/syncs`, `/plans`, `/workers`. */
function pageName(pathname) {
  if (pathname === '/') return 'loads';
  if (/^\/loads\/\d+$/.test(pathname)) return 'load';
  return pathname.slice(1);
}

const name = pageName(location.pathname);
document.title = `pgferry — ${name}`;
document.body.dataset.page = name;
document.getElementById('content').replaceChildren(document.getElementById(`page-${name}`).content.cloneNode(true));
void pages[name]();
