/* Sawt dashboard: polls /v1/trends and /v1/alerts (with ETags), draws with plotly.js, and
   lists a theme's complaints on click. Data is only ever written with textContent. */
"use strict";

(() => {
  const POLL_MS = 30000;
  const KEY_STORE = "sawt.apiKey";
  const LANG_STORE = "sawt.lang";
  const DIMS = ["service", "region", "channel", "language", "topic"];
  const COLORS = { negative: "#b42318", neutral: "#98a2b3", positive: "#067647" };

  const state = {
    key: sessionStorage.getItem(KEY_STORE),
    lang: localStorage.getItem(LANG_STORE) || "fr",
    labels: null,
    cache: new Map(), // url -> {etag, body}
    last: null, // the latest answers, to redraw on a language switch
    drill: null, // {topic, cursor}
    updated: null,
    timer: null,
  };

  const $ = (id) => document.getElementById(id);
  const t = (key) => (state.labels ? state.labels[state.lang].ui[key] || key : key);
  const topicName = (id) =>
    id === null ? t("not_given") : state.labels[state.lang].topics[id] || id;
  const languageName = (code) => state.labels[state.lang].languages[code] || code;
  const valueName = (dim, value) => {
    if (value === null || value === "") return t("not_given");
    if (dim === "topic") return topicName(value);
    if (dim === "language") return languageName(value);
    return value;
  };
  const pct = (x) => (x === null || x === undefined ? "—" : (x * 100).toFixed(1) + " %");
  const num = (x, d = 2) => (x === null || x === undefined ? "—" : Number(x).toFixed(d));

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  class AuthError extends Error {}

  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") query.append(name, value);
    }
    const url = path + (query.toString() ? "?" + query.toString() : "");
    const cached = state.cache.get(url);
    const headers = { Authorization: "Bearer " + state.key };
    if (cached) headers["If-None-Match"] = cached.etag;
    const response = await fetch(url, { headers, cache: "no-store" });
    if (response.status === 304 && cached) return cached.body;
    if (response.status === 401) throw new AuthError(t("bad_key"));
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (_) { /* not JSON */ }
      throw new Error(response.status + " " + detail);
    }
    const body = await response.json();
    const etag = response.headers.get("ETag");
    if (etag) state.cache.set(url, { etag, body });
    return body;
  }

  // --- filters ---------------------------------------------------------------------------

  function isoDate(d) {
    return d.toISOString().slice(0, 10);
  }

  function filterParams() {
    const params = {};
    for (const dim of DIMS) {
      const value = $("f-" + dim).value;
      if (value) params[dim] = value;
    }
    const range = $("f-range").value;
    if (range !== "all") {
      const to = new Date();
      const from = new Date(Date.UTC(to.getUTCFullYear(), to.getUTCMonth() - Number(range) + 1, 1));
      params.from = isoDate(from);
      params.to = isoDate(to);
    }
    return params;
  }

  async function loadFilterOptions() {
    for (const dim of DIMS) {
      const select = $("f-" + dim);
      const previous = select.value;
      const body = await api("/v1/trends", { group_by: dim, granularity: "month" });
      select.replaceChildren(new Option(t("all"), ""));
      const values = body.groups.map((g) => g.group[dim]).filter((v) => v !== null);
      values.sort((a, b) => valueName(dim, a).localeCompare(valueName(dim, b), state.lang));
      for (const value of values) select.append(new Option(valueName(dim, value), value));
      select.value = values.includes(previous) ? previous : "";
    }
  }

  // --- drawing ---------------------------------------------------------------------------

  const rtl = () => state.lang === "ar";

  function baseLayout(extra) {
    return Object.assign(
      {
        margin: { t: 10, r: 20, b: 40, l: 50 },
        font: { family: "Noto Sans, Noto Naskh Arabic, DejaVu Sans, Arial, sans-serif" },
        paper_bgcolor: "#fff",
        plot_bgcolor: "#fff",
        legend: { orientation: "h", y: -0.15 },
      },
      extra
    );
  }

  const plotConfig = { displayModeBar: false, responsive: true };

  function drawVolume(trends) {
    const counts = new Map(trends.series.map((p) => [p.period, p]));
    const periods = trends.periods.length ? trends.periods : trends.series.map((p) => p.period);
    const traces = ["negative", "neutral", "positive"].map((s) => ({
      type: "bar",
      name: t(s),
      x: periods,
      y: periods.map((p) => (counts.get(p) ? counts.get(p)[s] : 0)),
      marker: { color: COLORS[s] },
    }));
    Plotly.react($("chart-volume"), traces, baseLayout({ barmode: "stack" }), plotConfig);
    const index = {
      type: "scatter",
      mode: "lines+markers",
      name: t("experience_index"),
      x: periods,
      y: periods.map((p) => (counts.get(p) ? counts.get(p).experience_index : null)),
      connectgaps: false,
      line: { color: "#0b5cad" },
    };
    Plotly.react(
      $("chart-index"),
      [index],
      baseLayout({ yaxis: { range: [-1, 1], zeroline: true } }),
      plotConfig
    );
  }

  function drawTopics(byTopic) {
    const groups = byTopic.groups.slice().sort((a, b) => a.count - b.count);
    const ids = groups.map((g) => g.group.topic);
    const trace = {
      type: "bar",
      orientation: "h",
      x: groups.map((g) => g.count),
      y: groups.map((g) => topicName(g.group.topic)),
      customdata: ids,
      text: groups.map((g) => pct(g.shares ? g.shares.negative : null)),
      hovertemplate: "%{y}: %{x}<br>" + t("share_negative") + " %{text}<extra></extra>",
      marker: {
        color: groups.map((g) => g.experience_index),
        cmin: -1,
        cmax: 1,
        colorscale: [[0, COLORS.negative], [0.5, "#f2c94c"], [1, COLORS.positive]],
      },
    };
    const layout = baseLayout({
      margin: { t: 10, r: rtl() ? 160 : 20, b: 40, l: rtl() ? 20 : 160 },
      xaxis: { autorange: rtl() ? "reversed" : true },
      yaxis: { side: rtl() ? "right" : "left", automargin: true },
    });
    const chart = $("chart-topics");
    Plotly.react(chart, [trace], layout, plotConfig);
    if (!chart.dataset.bound) {
      chart.on("plotly_click", (event) => {
        const point = event.points && event.points[0];
        if (point) openDrill(point.customdata);
      });
      chart.dataset.bound = "1";
    }
    const list = $("topic-list");
    list.replaceChildren();
    for (const g of byTopic.groups) {
      const button = el("button", topicName(g.group.topic) + " (" + g.count + ")");
      button.type = "button";
      button.dataset.topic = g.group.topic;
      button.addEventListener("click", () => openDrill(g.group.topic));
      const item = el("li");
      item.append(button);
      list.append(item);
    }
  }

  function drawKpis(trends) {
    const totals = trends.totals;
    $("kpi-count").textContent = totals.count;
    $("kpi-negative").textContent = pct(totals.shares ? totals.shares.negative : null);
    $("kpi-index").textContent = num(totals.experience_index);
  }

  function drawAlerts(alerts) {
    const list = $("alert-list");
    list.replaceChildren();
    if (!alerts.alerts.length) {
      list.append(el("li", t("no_alerts"), "quiet"));
      return;
    }
    for (const alert of alerts.alerts) {
      const item = el("li");
      item.dataset.kind = alert.kind;
      const title = el("strong", t(alert.kind) + " — " + (alert.topic ? topicName(alert.topic) : t("all")));
      item.append(title);
      const facts = [
        alert.period,
        t("observed") + " " + num(alert.observed),
        t("expected") + " " + num(alert.expected),
      ];
      if (alert.p_value !== null) facts.push(t("p_value") + " " + alert.p_value.toExponential(1));
      item.append(el("div", facts.join(" · ")));
      for (const sample of alert.evidence.samples.slice(0, 2)) item.append(el("q", sample.text));
      if (alert.topic && alert.kind !== "new_theme") {
        item.addEventListener("click", () => openDrill(alert.topic));
      }
      list.append(item);
    }
  }

  function redraw() {
    if (!state.last || typeof Plotly === "undefined") return;
    drawVolume(state.last.trends);
    drawTopics(state.last.byTopic);
    drawKpis(state.last.trends);
    drawAlerts(state.last.alerts);
    if (state.updated) {
      $("updated").textContent = t("last_updated") + " " + state.updated.toLocaleTimeString(state.lang);
    }
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  }

  async function refresh() {
    const params = filterParams();
    const granularity = $("f-granularity").value;
    try {
      const topicParams = Object.assign({}, params);
      delete topicParams.topic;
      const alertParams = Object.assign({}, params);
      delete alertParams.from;
      delete alertParams.to;
      const [trends, byTopic, alerts] = await Promise.all([
        api("/v1/trends", Object.assign({ granularity }, params)),
        // Only the per-topic totals are drawn: monthly cells keep that answer small.
        api("/v1/trends", Object.assign({ granularity: "month", group_by: "topic" }, topicParams)),
        api("/v1/alerts", Object.assign({ granularity: granularity === "day" ? "week" : granularity }, alertParams)),
      ]);
      state.last = { trends, byTopic, alerts };
      state.updated = new Date();
      $("app-error").textContent = trends.totals.count ? "" : t("no_data");
      redraw();
    } catch (error) {
      handleError(error);
    }
  }

  // --- drill-down ------------------------------------------------------------------------

  async function openDrill(topic, more) {
    if (!more) state.drill = { topic, cursor: null };
    const params = Object.assign(filterParams(), { topic, limit: 20 });
    if (more && state.drill.cursor) params.cursor = state.drill.cursor;
    try {
      const page = await api("/v1/complaints", params);
      const body = $("drill-table").tBodies[0];
      if (!more) body.replaceChildren();
      for (const item of page.items) {
        const row = el("tr");
        row.append(el("td", item.received_at.slice(0, 10), "when"));
        row.append(el("td", item.text));
        const label = item.sentiment.label;
        row.append(el("td", t(label), label === "negative" ? "neg" : label === "positive" ? "pos" : ""));
        row.append(el("td", languageName(item.language)));
        row.append(el("td", item.service || t("not_given")));
        body.append(row);
      }
      state.drill.cursor = page.next_cursor;
      $("drill-more").hidden = !page.next_cursor;
      $("drill-title").textContent = t("complaints_for").replace("{topic}", topicName(topic));
      $("drill").hidden = false;
      if (!more) $("drill").scrollIntoView({ behavior: "smooth", block: "start" });
    } catch (error) {
      handleError(error);
    }
  }

  // --- language, session -----------------------------------------------------------------

  function applyLang(lang) {
    state.lang = state.labels[lang] ? lang : "fr";
    localStorage.setItem(LANG_STORE, state.lang);
    const bundle = state.labels[state.lang];
    document.documentElement.lang = bundle.lang;
    document.documentElement.dir = bundle.dir;
    document.title = t("title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const button of document.querySelectorAll("[data-lang]")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
    }
    for (const dim of DIMS) {
      for (const option of $("f-" + dim).options) {
        option.textContent = option.value ? valueName(dim, option.value) : t("all");
      }
    }
    redraw();
    if (state.drill && !$("drill").hidden) openDrill(state.drill.topic);
  }

  function handleError(error) {
    if (error instanceof AuthError) {
      logout(error.message);
      return;
    }
    $("app-error").textContent = t("error") + " : " + error.message;
  }

  async function start() {
    $("login").hidden = true;
    $("app").hidden = false;
    try {
      await loadFilterOptions();
    } catch (error) {
      handleError(error);
      return;
    }
    await refresh();
    clearInterval(state.timer);
    state.timer = setInterval(refresh, POLL_MS);
  }

  function logout(message) {
    clearInterval(state.timer);
    sessionStorage.removeItem(KEY_STORE);
    state.key = null;
    state.cache.clear();
    state.last = null;
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }

  async function init() {
    const response = await fetch("/dashboard/i18n.json");
    state.labels = await response.json();
    applyLang(state.lang);
    for (const button of document.querySelectorAll("[data-lang]")) {
      button.addEventListener("click", () => applyLang(button.dataset.lang));
    }
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.key = $("api-key").value.trim();
      $("api-key").value = "";
      sessionStorage.setItem(KEY_STORE, state.key);
      start();
    });
    $("logout").addEventListener("click", () => logout(""));
    for (const id of ["f-range", "f-granularity", ...DIMS.map((d) => "f-" + d)]) {
      $(id).addEventListener("change", () => {
        $("drill").hidden = true;
        refresh();
      });
    }
    $("drill-close").addEventListener("click", () => ($("drill").hidden = true));
    $("drill-more").addEventListener("click", () => openDrill(state.drill.topic, true));
    if (state.key) start();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
