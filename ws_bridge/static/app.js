// Chronicle dashboard: a snapshot from the query API, then live events from the bridge.
//
// The snapshot carries the position it reflects (X-Projection-Position, and each
// account's own `position`); the WebSocket subscription resumes from there with
// after_position, so every later event is applied exactly once. On a lost connection
// it reconnects with back-off and resumes from the last position it applied. When the
// query API cannot be reached, the state is rebuilt from the log (after_position 0).
"use strict";

const FEED_SIZE = 50;
const MAX_ACCOUNT_PAGES = 10;
const state = {
  accounts: new Map(),
  totals: { accounts: 0, open: 0, balance: 0, deposits: 0, withdrawals: 0, events: 0 },
  statsPosition: 0,
  position: 0,
  socket: null,
  retry: 0,
  config: { queries_url: "http://127.0.0.1:8001", ws_path: "/v1/ws" },
};

const $ = (id) => document.getElementById(id);
const money = (cents) => (cents / 100).toLocaleString(undefined, { minimumFractionDigits: 2 });

function setState(name, detail) {
  const badge = $("state");
  badge.textContent = detail ? `${name} (${detail})` : name;
  badge.className = `badge ${name}`;
  badge.dataset.state = name;
}

function notice(text) {
  const box = $("notice");
  box.hidden = !text;
  box.textContent = text || "";
}

async function getJson(path) {
  const response = await fetch(state.config.queries_url + path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  const position = Number(response.headers.get("X-Projection-Position") || 0);
  return { body: await response.json(), position };
}

async function loadSnapshot() {
  let cursor = null;
  let position = Infinity;
  for (let page = 0; page < MAX_ACCOUNT_PAGES; page += 1) {
    const query = "/v1/accounts?limit=100" + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
    const { body, position: seen } = await getJson(query);
    position = Math.min(position, seen);
    for (const account of body.items) state.accounts.set(account.account_id, { ...account });
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  const stats = await getJson("/v1/stats");
  Object.assign(state.totals, {
    accounts: stats.body.accounts,
    open: stats.body.open_accounts,
    balance: stats.body.total_balance,
    deposits: stats.body.deposits,
    withdrawals: stats.body.withdrawals,
  });
  state.statsPosition = stats.position;
  // Resume from the oldest position either read model reflects; newer events that a
  // model already holds are recognised by position and skipped for that model.
  return Math.min(position === Infinity ? stats.position : position, stats.position);
}

const BALANCE = {
  MoneyDeposited: 1,
  AccountCreditedForTransfer: 1,
  AccountDebitReversed: 1,
  MoneyWithdrawn: -1,
  AccountDebitedForTransfer: -1,
};

function applyToAccount(event) {
  const data = event.data || {};
  const id = data.account_id;
  if (!id) return false;
  let account = state.accounts.get(id);
  if (event.type === "AccountOpened") {
    if (account) return false;
    account = { account_id: id, owner: data.owner || "", balance: 0, status: "open", position: 0 };
    state.accounts.set(id, account);
  }
  if (!account || event.position <= account.position) return false;
  account.position = event.position;
  if (event.type in BALANCE) account.balance += BALANCE[event.type] * data.amount;
  if (event.type === "AccountClosed") account.status = "closed";
  return true;
}

function applyToTotals(event) {
  if (event.position <= state.statsPosition) return;
  const t = state.totals;
  const amount = (event.data && event.data.amount) || 0;
  if (event.type === "AccountOpened") { t.accounts += 1; t.open += 1; }
  if (event.type === "AccountClosed") t.open -= 1;
  if (event.type === "MoneyDeposited") t.deposits += 1;
  if (event.type === "MoneyWithdrawn") t.withdrawals += 1;
  if (event.type in BALANCE) t.balance += BALANCE[event.type] * amount;
}

function apply(event) {
  if (event.position <= state.position) return;
  state.position = event.position;
  state.totals.events += 1;
  const changed = applyToAccount(event);
  applyToTotals(event);
  renderFeedItem(event);
  renderTotals();
  if (changed && event.data) renderAccount(state.accounts.get(event.data.account_id), true);
}

function renderTotals() {
  const t = state.totals;
  $("total-accounts").textContent = t.accounts;
  $("total-open").textContent = t.open;
  $("total-balance").textContent = money(t.balance);
  $("total-deposits").textContent = t.deposits;
  $("total-withdrawals").textContent = t.withdrawals;
  $("total-events").textContent = t.events;
  $("position").textContent = state.position;
}

function renderAccount(account, flash) {
  const rowId = `account-${account.account_id}`;
  let row = document.getElementById(rowId);
  if (!row) {
    row = document.createElement("tr");
    row.id = rowId;
    row.dataset.account = account.account_id;
    for (const cls of ["id", "owner", "balance num", "status"]) {
      const cell = document.createElement("td");
      cell.className = cls;
      row.appendChild(cell);
    }
    $("accounts").appendChild(row);
  }
  row.children[0].textContent = account.account_id;
  row.children[1].textContent = account.owner;
  row.children[2].textContent = money(account.balance);
  row.children[2].dataset.cents = String(account.balance);
  row.children[3].textContent = account.status;
  if (flash) {
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
  }
}

function renderFeedItem(event) {
  const item = document.createElement("li");
  const amount = event.data && event.data.amount !== undefined ? money(event.data.amount) : "";
  for (const [cls, text] of [["pos", `#${event.position}`], ["type", `${event.type} ${event.stream_id}`], ["amt", amount]]) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    item.appendChild(span);
  }
  const feed = $("feed");
  feed.prepend(item);
  while (feed.children.length > FEED_SIZE) feed.lastChild.remove();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${state.config.ws_path}`);
  state.socket = socket;
  setState(state.retry ? "reconnecting" : "connecting");
  socket.onopen = () => {
    const token = sessionStorage.getItem("chronicle-token");
    if (token) socket.send(JSON.stringify({ op: "auth", token }));
    socket.send(JSON.stringify({
      op: "subscribe",
      id: "dashboard",
      filter: { categories: ["account"] },
      after_position: state.position,
    }));
  };
  socket.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    if (frame.op === "event") apply(frame);
    else if (frame.op === "caught_up") {
      state.retry = 0;
      setState("live");
      state.position = Math.max(state.position, frame.position);
      renderTotals();
    } else if (frame.op === "error") notice(`${frame.code}: ${frame.message}`);
  };
  socket.onclose = (close) => {
    if (state.socket !== socket) return;
    state.retry += 1;
    const delay = Math.min(5000, 250 * 2 ** Math.min(state.retry, 5)) * (0.8 + Math.random() * 0.4);
    setState(close.code === 1008 ? "offline" : "reconnecting", `close ${close.code}`);
    if (close.code === 1008) notice("The bridge wants a token: open 'Token' below.");
    setTimeout(connect, delay);
  };
}

async function start() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) Object.assign(state.config, await response.json());
  } catch (error) {
    // The defaults above serve a bridge on the standard ports.
  }
  try {
    state.position = await loadSnapshot();
    notice("");
  } catch (error) {
    state.accounts.clear();
    Object.assign(state.totals, { accounts: 0, open: 0, balance: 0, deposits: 0, withdrawals: 0 });
    state.position = 0;
    state.statsPosition = 0;
    notice(`Query API unavailable (${error.message}); state rebuilt from the event log.`);
  }
  for (const account of state.accounts.values()) renderAccount(account, false);
  renderTotals();
  connect();
}

$("token-form").addEventListener("submit", (submit) => {
  submit.preventDefault();
  sessionStorage.setItem("chronicle-token", $("token").value.trim());
  if (state.socket) state.socket.close();
});

start();
