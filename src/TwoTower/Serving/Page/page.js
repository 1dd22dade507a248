// The page's only logic: read the form, call the JSON API (/recommend, /history, /customers,
// /model-card), and render what comes back. Every value is written as text, never as HTML.
"use strict";

const $ = id => document.getElementById(id);

/** GET a JSON endpoint; throws an Error whose message is the service's own (its "error" field) or says it did not answer. */
async function getJson(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (e) {
    throw new Error("The service did not answer (" + e.message + "). Is Serve still running?");
  }
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    const error = new Error(body && body.error ? body.error : `The service answered ${response.status} ${response.statusText}.`);
    error.status = response.status;
    throw error;
  }
  if (body === null) throw new Error("The service answered something that is not JSON.");
  return body;
}

function showMessage(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = kind === "note" ? "note" : "";
  box.hidden = !text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

/** An article's item features as one line ("garment: Jersey · group: Ladieswear"). */
function details(features) {
  return Object.entries(features || {}).filter(([, v]) => v !== "").map(([k, v]) => `${k.replace(/_/g, " ")}: ${v}`).join(" · ");
}

function renderRecommendations(result, bought) {
  const rows = $("recommendation-rows");
  rows.replaceChildren();
  result.items.forEach((item, i) => {
    const row = rows.insertRow();
    row.dataset.article = item.article_id;
    cell(row, String(i + 1), "number");
    cell(row, item.article_id);
    cell(row, details(item.features), "details");
    cell(row, item.score === null ? "–" : item.score.toFixed(4), "number");
    const sources = row.insertCell();
    for (const source of item.sources) {
      const badge = document.createElement("span");
      badge.className = "source";
      badge.textContent = source.replace(/_/g, " ");
      sources.appendChild(badge);
    }
    const mark = cell(row, bought.has(item.article_id) ? "bought" : "", "bought");
    mark.title = bought.has(item.article_id) ? "the customer bought this article in the training period" : "";
  });
  const list = result.source === "blend" ? "the blend of every source" : "the two-tower model alone";
  $("recommendations-title").textContent = `Top ${result.items.length} for ${result.customer_id} (${list})`;
  $("recommendations").hidden = false;
}

function renderHistory(past) {
  const rows = $("history-rows");
  rows.replaceChildren();
  for (const purchase of past.purchases) {
    const row = rows.insertRow();
    cell(row, purchase.date ?? "–", "number");
    cell(row, purchase.article_id);
    cell(row, details(purchase.features), "details");
  }
  const shown = past.purchases.length < past.total ? `, the latest ${past.purchases.length}` : "";
  $("history-title").textContent = `Purchase history of ${past.customer_id}: ${past.total} purchases${shown}, newest first`;
  $("history").hidden = false;
}

async function lookUp(event) {
  if (event) event.preventDefault();
  const customer = $("customer").value.trim();
  if (!customer) {
    showMessage("Enter a customer id.");
    return;
  }
  const k = $("k").value;
  const params = new URLSearchParams({ customer_id: customer, k, exclude_bought: $("exclude-bought").checked, model_only: $("list").value === "model" });
  // A model with history features takes recent purchases from the request: a new customer's cart or first orders.
  const recent = $("recent-label").hidden ? "" : $("recent").value.trim();
  if (recent) params.set("history", recent);
  history.replaceState(null, "", "?" + params);
  showMessage("");
  try {
    const [recommended, bought] = await Promise.all([
      getJson("/recommend?" + params),
      getJson("/history?" + new URLSearchParams({ customer_id: customer })).catch(e => { if (e.status === 404) return null; throw e; }),
    ]);
    if (bought) {
      renderHistory(bought);
    } else {
      $("history").hidden = true;
      showMessage(recent
        ? `Customer "${customer}" was not seen in training: the list below is what a new customer who bought ${recent} gets.`
        : `Customer "${customer}" was not seen in training, so there is no history: the list below is what a new customer gets.`, "note");
    }
    renderRecommendations(recommended, new Set(bought ? bought.articles_bought : []));
  } catch (e) {
    $("recommendations").hidden = true;
    $("history").hidden = true;
    showMessage(e.message);
  }
}

let suggestTimer = null;
function suggest() {
  clearTimeout(suggestTimer);
  const prefix = $("customer").value.trim();
  suggestTimer = setTimeout(async () => {
    try {
      const found = await getJson("/customers?" + new URLSearchParams({ prefix, limit: 10 }));
      $("customer-suggestions").replaceChildren(...found.customer_ids.map(id => Object.assign(document.createElement("option"), { value: id })));
    } catch { /* suggestions are a convenience: a failed one leaves the list as it was */ }
  }, 150);
}

function fixed(x) { return x === undefined || x === null ? "–" : x.toFixed(4); }

async function loadModelCard() {
  try {
    const card = await getJson("/model-card");
    const facts = $("card-facts");
    const add = (name, value) => {
      if (value === undefined || value === null) return;
      facts.append(Object.assign(document.createElement("dt"), { textContent: name }), Object.assign(document.createElement("dd"), { textContent: String(value) }));
    };
    add("data", card.data);
    add("trained on", card.training_period);
    add("customers known", card.customers?.toLocaleString("en"));
    add("articles", card.articles?.toLocaleString("en"));
    add("model fingerprint", card.model_fingerprint);
    add("config fingerprint", card.config_fingerprint);
    add("package format", card.format_version);
    add("index recall@100", card.index_recall_at_100?.toFixed(4));
    if (card.union) add("union of the sources", `${Math.round(card.union.mean_candidates)} candidates per customer, recall ${fixed(card.union.recall)}`);
    $("recent-label").hidden = !(card.history_length > 0);
    $("package-line").textContent = `${card.articles.toLocaleString("en")} articles, ${card.customers.toLocaleString("en")} known customers; model ${card.model_fingerprint.slice(0, 8)}.`;
    const best = Math.max(...card.per_customer.map(m => m.map12));
    const rows = $("card-metrics");
    for (const m of card.per_customer) {
      const row = rows.insertRow();
      if (m.map12 === best) row.className = "best";
      cell(row, m.method);
      cell(row, m.customers.toLocaleString("en"), "number");
      cell(row, fixed(m.map12), "number");
      cell(row, fixed(m.recall_at["10"]), "number");
      cell(row, fixed(m.recall_at["100"]), "number");
      cell(row, fixed(m.row_hit_at100), "number");
    }
    for (const plot of card.plots) {
      const figure = document.createElement("figure");
      figure.append(Object.assign(document.createElement("img"), { src: plot.url, alt: plot.name, loading: "lazy" }),
        Object.assign(document.createElement("figcaption"), { textContent: plot.name }));
      $("card-plots").appendChild(figure);
    }
    $("card-config").textContent = card.config;
  } catch (e) {
    showMessage("The model card could not be loaded: " + e.message);
  }
}

$("lookup").addEventListener("submit", lookUp);
$("customer").addEventListener("input", suggest);
for (const id of ["k", "list", "exclude-bought"])
  $(id).addEventListener("change", () => { if ($("customer").value.trim()) lookUp(); });

const cardLoaded = loadModelCard();
suggest();
const start = new URLSearchParams(location.search);
if (start.get("customer_id")) {
  $("customer").value = start.get("customer_id");
  if (start.get("k")) $("k").value = start.get("k");
  $("exclude-bought").checked = start.get("exclude_bought") === "true";
  $("list").value = start.get("model_only") === "true" ? "model" : "blend";
  if (start.get("history")) $("recent").value = start.get("history");
  cardLoaded.then(() => lookUp());   // the card says whether the recent-articles field applies
}
