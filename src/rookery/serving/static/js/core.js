/* rookery web page, shared parts: DOM helpers, messages, the REST API with its key, class colours.
 *
 * Plain JavaScript, no build step, nothing loaded from outside this server. The pages are shells rendered
 * by the server; everything they show comes from the REST API (/api/v1), so a page and the API never
 * disagree. When the API answers 401, the page shows a field for the key, keeps it in localStorage and
 * sends it as X-API-Key from then on. The files share one namespace, window.rookery, and load in order
 * (base.html): core, viewer, result, upload, pages, app.
 */
(function (R) {
  "use strict";

  const body = document.body;
  const BASE = body.dataset.base || "";
  const API = BASE + "/api/v1";
  const KEY_STORE = "rookery.apiKey";
  const MB = 1000 * 1000; // the server counts its upload limit (ROOKERY_MAX_UPLOAD_MB) in these
  const $ = (selector, root) => (root || document).querySelector(selector);

  // --- small DOM helpers --------------------------------------------------------------------------

  /** el("td", {class: "num"}, "3") -> <td class="num">3</td>; text only, never HTML (file names are user input). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "style") node.style.cssText = String(value); // CSSOM: allowed by the page's CSP
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function formatTime(iso) {
    const date = new Date(iso);
    return isNaN(date) ? String(iso || "") : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function formatNumber(value) {
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return value.toLocaleString();
    return Math.abs(value) >= 1000 ? value.toFixed(1) : value.toPrecision(4);
  }

  /** A count with its interval, "12 (8–17)", as nodes for el(); just the count when there is no interval (a
   * prediction stored before intervals existed). The count stays alone in span.n, the interval in span.interval. */
  function withInterval(count, bounds) {
    const n = el("span", { class: "n" }, String(count));
    if (!Array.isArray(bounds) || bounds.length !== 2) return [n];
    return [n, " ", el("span", { class: "interval", "data-lo": bounds[0], "data-hi": bounds[1] }, `(${bounds[0]}–${bounds[1]})`)];
  }

  /** The interval of a sum of counts: the sum of the lows and of the highs (conservative); null if one is missing. */
  function sumIntervals(list) {
    if (!list.length || list.some((b) => !Array.isArray(b))) return null;
    return list.reduce(([lo, hi], b) => [lo + b[0], hi + b[1]], [0, 0]);
  }

  function formatMB(bytes) {
    return (bytes / MB).toFixed(bytes < 10 * MB ? 1 : 0) + " MB";
  }

  // --- messages -------------------------------------------------------------------------------------

  function showError(message, items) {
    const box = $("#error");
    box.replaceChildren(el("p", {}, message));
    if (items && items.length) box.append(el("ul", {}, items.map((item) => el("li", {}, item))));
    box.hidden = false;
  }

  function clearError() {
    const box = $("#error");
    box.hidden = true;
    box.replaceChildren();
  }

  // --- API access and the API key ---------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORE) || "";
    } catch (e) {
      return ""; // storage disabled: the key then lives only as long as the page
    }
  }
  let sessionKey = storedKey();

  const hasKey = () => Boolean(sessionKey);

  function keyHeaders() {
    return sessionKey ? { "X-API-Key": sessionKey } : {};
  }

  /** The one sentence the API puts in "detail", or a plain sentence when a proxy answered instead. */
  function detailFrom(status, text) {
    try {
      const detail = JSON.parse(text).detail;
      if (typeof detail === "string" && detail) return detail;
      if (Array.isArray(detail) && detail.length) {
        return detail.map((d) => (d && d.msg ? d.msg : JSON.stringify(d))).join("; ");
      }
    } catch (e) {
      /* not JSON */
    }
    if (status === 413) return "The upload is larger than the server accepts; send fewer or smaller photos.";
    if (status === 0) return "The server could not be reached; check the connection and try again.";
    return `The server answered ${status}; try again in a moment.`;
  }

  async function api(path, options) {
    const opts = options || {};
    let response;
    try {
      response = await fetch(API + path, { ...opts, headers: { ...keyHeaders(), ...(opts.headers || {}) } });
    } catch (e) {
      throw new ApiError(0, detailFrom(0, ""));
    }
    if (!response.ok) throw new ApiError(response.status, detailFrom(response.status, await response.text()));
    return response;
  }

  const apiJson = async (path, options) => (await api(path, options)).json();

  let retryAfterKey = null;

  /** Shows an API failure: the key field for 401 (and retries `retry` once a key is saved), else the sentence. */
  function handleApiError(error, retry) {
    if (!(error instanceof ApiError)) {
      console.error(error);
      showError("Something went wrong on this page: " + error.message);
      return;
    }
    if (error.status === 401) {
      askForKey(
        sessionKey
          ? "The server did not accept the saved API key; enter the right one. It is kept in this browser only."
          : "This server asks for an API key. It is kept in this browser only.",
        retry,
      );
      clearError();
      $("#api-key").focus();
      return;
    }
    showError(error.detail);
  }

  function askForKey(message, retry) {
    retryAfterKey = retry || null;
    $("#api-key-message").textContent = message;
    $("#api-key-panel").hidden = false;
  }

  function setupKeyPanel() {
    const status = $("#key-status");
    const refresh = () => {
      status.hidden = !sessionKey;
    };
    refresh();
    $("#api-key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionKey = $("#api-key").value.trim();
      try {
        localStorage.setItem(KEY_STORE, sessionKey);
      } catch (e) {
        /* kept for this page only */
      }
      $("#api-key").value = "";
      $("#api-key-panel").hidden = true;
      refresh();
      const retry = retryAfterKey;
      retryAfterKey = null;
      if (retry) retry();
    });
    $("#forget-key").addEventListener("click", () => {
      sessionKey = "";
      try {
        localStorage.removeItem(KEY_STORE);
      } catch (e) {
        /* nothing stored */
      }
      refresh();
    });
  }

  // --- class colours: the rule of rookery.inference.render.class_colors --------------------------------

  const COLOURS = JSON.parse($("#rookery-colours").textContent);

  /** name -> "rgb(r, g, b)": the sea lion dot colours when every class is a sea lion class, else the palette. */
  function classColours(names) {
    const sealions = COLOURS.sealions;
    const useSealions = names.length > 0 && names.every((n) => Object.prototype.hasOwnProperty.call(sealions, n));
    const out = {};
    names.forEach((name, i) => {
      const [r, g, b] = useSealions ? sealions[name] : COLOURS.palette[i % COLOURS.palette.length];
      out[name] = `rgb(${r}, ${g}, ${b})`;
    });
    return out;
  }

  Object.assign(R, { body, BASE, API, MB, $, el, svg, formatTime, formatNumber, formatMB, withInterval, sumIntervals, showError, clearError, ApiError, hasKey, keyHeaders, detailFrom, api, apiJson, handleApiError, askForKey, setupKeyPanel, classColours });
})((window.rookery = window.rookery || {}));
