/* rookery web page: the stored prediction, history and model pages. */
(function (R) {
  "use strict";

  const { body, BASE, $, el, formatTime, formatNumber, withInterval, api, apiJson, handleApiError, saveFile, ResultView } = R;

  // --- the stored prediction page ------------------------------------------------------------------------

  function setupPredictionPage() {
    const view = new ResultView();
    const id = body.dataset.predictionId;
    const load = async () => {
      try {
        const prediction = await apiJson(`/predictions/${encodeURIComponent(id)}`);
        $("#loading").hidden = true;
        document.title = `${prediction.file_name} · rookery`;
        await view.show(prediction, null);
      } catch (error) {
        $("#loading").hidden = true;
        handleApiError(error, load);
      }
    };
    load();
  }

  // --- history -------------------------------------------------------------------------------------------

  function setupHistoryPage() {
    const params = new URLSearchParams(location.search);
    const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    const perPage = Math.min(100, Math.max(1, parseInt(params.get("per_page") || "20", 10) || 20));
    const load = async () => {
      try {
        const data = await apiJson(`/predictions?page=${page}&per_page=${perPage}`);
        $("#loading").hidden = true;
        renderHistory(data, page, perPage);
      } catch (error) {
        $("#loading").hidden = true;
        handleApiError(error, load);
      }
    };
    load();
    const exportCsv = async () => {
      try {
        const text = await (await api("/predictions.csv")).text();
        saveFile("rookery-history.csv", "text/csv", text);
      } catch (error) {
        handleApiError(error, exportCsv);
      }
    };
    $("#export-csv").addEventListener("click", exportCsv);
  }

  function renderHistory(data, page, perPage) {
    const items = data.items || [];
    $("#history-empty").hidden = items.length > 0 || page > 1;
    $("#history-wrap").hidden = items.length === 0;
    const classes = [];
    for (const item of items) for (const name of Object.keys(item.counts || {})) if (!classes.includes(name)) classes.push(name);
    $("#history thead").replaceChildren(
      el(
        "tr",
        {},
        el("th", { scope: "col" }, "When"),
        el("th", { scope: "col" }, "Photo"),
        el("th", { scope: "col" }, "Model"),
        classes.map((name) => el("th", { scope: "col", class: "num" }, name.replace(/_/g, " "))),
        el("th", { scope: "col", class: "num" }, "Total"),
      ),
    );
    $("#history tbody").replaceChildren(
      ...items.map((item) => {
        const model = item.model || {};
        return el(
          "tr",
          { "data-id": item.id },
          el("td", { class: "when nowrap" }, el("time", { datetime: item.created_at }, formatTime(item.created_at))),
          el("th", { scope: "row" }, el("a", { href: `${BASE}/predictions/${encodeURIComponent(item.id)}` }, item.file_name)),
          el("td", { class: "model nowrap" }, model.version ? `v${model.version}${model.alias ? " @" + model.alias : ""}` : model.label || ""),
          classes.map((name) =>
            el(
              "td",
              { class: "num class-count", "data-label": name.replace(/_/g, " ") },
              name in item.counts ? withInterval(item.counts[name], (item.intervals || {})[name]) : "–",
            ),
          ),
          el("td", { class: "num total" }, withInterval(item.total, item.total_interval)),
        );
      }),
    );
    const pages = Math.max(1, Math.ceil((data.total || 0) / perPage));
    const pager = $("#pager");
    pager.hidden = pages <= 1 && page <= 1;
    $("#page-info").textContent = `Page ${page} of ${pages} · ${data.total} photos`;
    const newer = $("#newer");
    const older = $("#older");
    const size = perPage === 20 ? "" : `&per_page=${perPage}`;
    newer.href = `?page=${page - 1}${size}`;
    older.href = `?page=${page + 1}${size}`;
    newer.hidden = page <= 1;
    older.hidden = page >= pages;
  }

  // --- model -------------------------------------------------------------------------------------------------

  function setupModelPage() {
    const load = async () => {
      try {
        const model = await apiJson("/model");
        $("#loading").hidden = true;
        renderModel(model);
      } catch (error) {
        $("#loading").hidden = true;
        handleApiError(error, load);
      }
    };
    load();
    const reload = async () => {
      const button = $("#reload-model");
      button.disabled = true;
      $("#reload-result").textContent = "Asking the registry…";
      try {
        const answer = await apiJson("/model/reload", { method: "POST" });
        renderModel(answer.model);
        $("#reload-result").textContent = answer.changed
          ? `Now serving version ${answer.model.version}.`
          : "No new version: this one is current.";
      } catch (error) {
        $("#reload-result").textContent = "";
        handleApiError(error, reload);
      } finally {
        button.disabled = false;
      }
    };
    $("#reload-model").addEventListener("click", reload);
  }

  function renderModel(model) {
    const facts = [
      ["Name", model.name],
      ["Version", model.version],
      ["Alias", model.alias || "—"],
      ["Classes", (model.class_names || []).join(", ")],
      ["Model URI", model.uri],
      ["Run id", model.run_id || "—"],
      ["Runs on", [model.backend, model.device].filter(Boolean).join(" · ") || "—"],
      ["Tiles", model.tile ? `${model.tile} px, overlap ${model.overlap} px${model.imgsz ? `, network input ${model.imgsz} px` : ""}` : "—"],
      ["Loaded", model.loaded_at ? formatTime(model.loaded_at) : "—"],
      ["Follows the alias", model.following_alias ? "yes: a new version is picked up when the alias moves" : "no"],
    ];
    $("#model-facts").replaceChildren(
      ...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", { "data-field": term.toLowerCase().replace(/\W+/g, "-") }, value ?? "—")]),
    );
    $("#model").hidden = false;
    // The API gives the link to this version in the MLflow UI (when ROOKERY_MLFLOW_UI_URL is set).
    const versionUrl = model.mlflow_ui_url || "";
    const ui = versionUrl.split("#")[0].replace(/\/+$/, "");
    const links = $("#mlflow-links");
    links.hidden = !versionUrl;
    if (versionUrl) {
      links.replaceChildren(
        el("a", { class: "button", id: "mlflow-version", href: versionUrl }, "This version in MLflow"),
        model.run_id ? el("a", { class: "button", href: `${ui}/#/runs/${encodeURIComponent(model.run_id)}` }, "Its training run") : null,
        el("a", { class: "button", href: ui + "/" }, "MLflow UI"),
      );
    }
    renderCard(model.card);
    const metrics = Object.entries(model.metrics || {}).sort(([a], [b]) => a.localeCompare(b));
    $("#model-metrics").hidden = metrics.length === 0;
    $("#metrics tbody").replaceChildren(
      ...metrics.map(([name, value]) => el("tr", { "data-metric": name }, el("th", { scope: "row" }, name), el("td", { class: "num" }, formatNumber(value)))),
    );
  }

  // The model card: what the model was trained on and what it is for, before anyone trusts its counts.
  function renderCard(card) {
    if (!card) return;
    const objects = Object.entries(card.training_objects || {}).map(([name, n]) => `${name} ${n}`).join(", ");
    const validation = Object.entries(card.validation || {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, value]) => `${name} ${formatNumber(value)}`)
      .join(" · ");
    const facts = [
      ["Intended use", card.intended_use],
      ["Trained on", card.trained_on],
      ["Classes", (card.classes || []).join(", ")],
      ["Objects in training", objects || "—"],
      ["Recipe", card.recipe],
      ["Validation", validation || "—"],
    ];
    $("#card-facts").replaceChildren(
      ...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", { "data-card": term.toLowerCase().replace(/\W+/g, "-") }, value ?? "—")]),
    );
    $("#model-card").hidden = false;
  }

  Object.assign(R, { setupPredictionPage, setupHistoryPage, setupModelPage });
})((window.rookery = window.rookery || {}));
