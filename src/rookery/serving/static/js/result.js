/* rookery web page: the result view of one prediction (photo, counts, bar chart, downloads). */
(function (R) {
  "use strict";

  const { body, BASE, $, el, svg, formatTime, withInterval, api, ApiError, handleApiError, classColours, Viewer } = R;

  // --- downloads ----------------------------------------------------------------------------------------

  function saveFile(name, type, content) {
    const url = URL.createObjectURL(new Blob([content], { type }));
    const link = el("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function fileStem(prediction) {
    const stem = String(prediction.file_name || "photo").replace(/\.[^.]*$/, "").replace(/[^\w.-]+/g, "_");
    return `${stem || "photo"}-${String(prediction.id).slice(0, 8)}`;
  }

  /** The line under the counts table that says what the brackets hold. */
  function intervalNote(prediction) {
    if (!prediction.intervals) return "No interval was stored with this prediction (counted before intervals existed).";
    const level = `${Math.round((prediction.interval_level || 0.9) * 100)} % interval`;
    return `In brackets: the ${level} of each count` + (prediction.interval_calibrated ? "." : " (uncalibrated: about ±40 %).");
  }

  // The CSVs come from the server (one CSV writer, cells that never run as spreadsheet formulas): the columns of
  // `rookery predict`'s counts.csv and detections.csv.
  async function download(kind, prediction) {
    const stem = fileStem(prediction);
    if (kind === "counts-csv" || kind === "detections-csv") {
      const what = kind.replace("-csv", "");
      try {
        const response = await api(`/predictions/${encodeURIComponent(prediction.id)}/${what}.csv`);
        saveFile(`${stem}-${what}.csv`, "text/csv", await response.text());
      } catch (error) {
        handleApiError(error, () => download(kind, prediction));
      }
    } else {
      const { annotated_image, ...rest } = prediction; // eslint-disable-line no-unused-vars
      saveFile(`${stem}.json`, "application/json", JSON.stringify(rest, null, 2) + "\n");
    }
  }

  // --- the result view (one prediction) -----------------------------------------------------------------------

  /** An <img> loaded from `url`; a blob: URL is released once loaded (the decoded image stays drawable). */
  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      const release = () => url.startsWith("blob:") && URL.revokeObjectURL(url);
      image.onload = () => {
        release();
        resolve(image);
      };
      image.onerror = () => {
        release();
        reject(new Error("the photo could not be shown"));
      };
      image.src = url;
    });
  }

  /** An image of the API (its URLs start with /api/v1) as an <img>: fetched with the key, which <img src> cannot send. */
  async function fetchImage(url) {
    const blob = await (await api(String(url).replace(/^\/api\/v1/, ""))).blob();
    return loadImage(URL.createObjectURL(blob));
  }

  class ResultView {
    constructor() {
      this.section = $("#result");
      this.viewer = new Viewer($("#viewer-stage"), $("#viewer-canvas"), {
        slider: $("#zoom"),
        output: $("#zoom-value"),
        zoomIn: $("#zoom-in"),
        zoomOut: $("#zoom-out"),
        fit: $("#zoom-fit"),
      });
      this.prediction = null;
      this.colours = {};
      this.token = 0;
      let lastWidth = 0;
      window.addEventListener("resize", () => {
        const width = $("#chart").clientWidth;
        if (this.prediction && width !== lastWidth) {
          lastWidth = width;
          this.drawChart();
        }
      });
      this.section.querySelectorAll("[data-download]").forEach((button) => {
        button.addEventListener("click", () => this.prediction && download(button.dataset.download, this.prediction));
      });
    }

    /** Shows a prediction; `localFile` is the photo the user just uploaded (no need to fetch it back). */
    async show(prediction, localFile) {
      const token = ++this.token;
      this.prediction = prediction;
      const names = Object.keys(prediction.counts);
      const colours = classColours(names);
      this.section.hidden = false;
      $("#result-title").textContent = prediction.file_name || "Photo";
      const model = prediction.model || {};
      $("#result-meta").replaceChildren(
        el("time", { datetime: prediction.created_at }, formatTime(prediction.created_at)),
        ` · ${prediction.width}×${prediction.height} px · model ${model.label || model.name + " v" + model.version}`,
        prediction.timings_ms && prediction.timings_ms.total !== undefined
          ? ` · counted in ${(prediction.timings_ms.total / 1000).toFixed(2)} s`
          : "",
      );
      const link = $("#result-link");
      link.href = `${BASE}/predictions/${encodeURIComponent(prediction.id)}`;
      link.hidden = body.dataset.page === "prediction";
      this.colours = colours;
      this.renderCounts(prediction, names, colours);
      this.drawChart();

      const canvas = $("#viewer-canvas");
      canvas.setAttribute(
        "aria-label",
        `${prediction.file_name}: ${prediction.total} objects found, outlined in their class colours`,
      );
      const note = $("#viewer-note");
      note.hidden = true;
      const { image, boxes } = await this.photo(prediction, localFile);
      if (token !== this.token) return; // another result was chosen meanwhile
      if (!image) {
        note.textContent = "The photo could not be shown; the counts above are complete.";
        note.hidden = false;
        this.viewer.show(null, [], colours, false);
        return;
      }
      if (!boxes) {
        note.textContent = "The photo as the server annotated it: classes cannot be hidden on it.";
        note.hidden = false;
      }
      document.querySelectorAll("#counts input[type=checkbox]").forEach((box) => {
        box.disabled = !boxes;
      });
      $("#toggle-hint").hidden = !boxes;
      this.viewer.show(image, prediction.detections, colours, boxes);
      this.applyToggles();
    }

    /** The photo to draw on: the user's own file, else the server's copy; the annotated image as a last resort. */
    async photo(prediction, localFile) {
      const fits = (image) => image.width === prediction.width && image.height === prediction.height;
      if (localFile) {
        try {
          const image = await loadImage(URL.createObjectURL(localFile));
          // The browser may turn a photo by its EXIF orientation where the server did not: boxes would not fit.
          if (fits(image)) return { image, boxes: true };
        } catch (e) {
          /* a format the browser cannot show (TIFF): use the server's images */
        }
      }
      if (prediction.upload_url) {
        try {
          const image = await fetchImage(prediction.upload_url);
          if (fits(image)) return { image, boxes: true };
        } catch (e) {
          /* fall through to the annotated image */
        }
      }
      if (!prediction.image_url) return { image: null, boxes: false };
      try {
        return { image: await fetchImage(prediction.image_url), boxes: false };
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) handleApiError(e, () => this.show(prediction, localFile));
        return { image: null, boxes: false };
      }
    }

    drawChart() {
      renderChart($("#chart"), this.prediction.counts, this.prediction.intervals, this.colours, this.viewer.hidden);
    }

    renderCounts(prediction, names, colours) {
      const rows = names.map((name) => {
        const id = `show-${name.replace(/[^\w-]/g, "_")}`;
        const box = el("input", { type: "checkbox", id, checked: true, "data-class": name });
        box.addEventListener("change", () => {
          this.viewer.setHidden(name, !box.checked);
          this.drawChart();
        });
        return el(
          "tr",
          { "data-class": name },
          el("td", { class: "toggle" }, box, el("label", { for: id, class: "visually-hidden" }, `Show ${name}`)),
          el("th", { scope: "row" }, el("span", { class: "swatch", style: `background:${colours[name]}` }), name),
          el("td", { class: "count num" }, withInterval(prediction.counts[name], (prediction.intervals || {})[name])),
        );
      });
      $("#counts tbody").replaceChildren(...rows);
      $("#total").replaceChildren(...withInterval(prediction.total, prediction.total_interval));
      $("#interval-note").textContent = intervalNote(prediction);
      // Nothing found: the server says what that may mean (another scale, another kind of photo than trained on).
      $("#empty-note").hidden = !prediction.note;
      $("#empty-note").textContent = prediction.note || "";
    }

    applyToggles() {
      document.querySelectorAll("#counts input[type=checkbox]").forEach((box) => {
        if (!box.checked) this.viewer.setHidden(box.dataset.class, true);
      });
    }
  }

  /** A horizontal bar per class in its colour, as inline SVG, with its interval as an error bar; hidden classes are
   * drawn faint. */
  function renderChart(container, counts, intervals, colours, hidden) {
    const names = Object.keys(counts);
    const bounds = (name) => (intervals && Array.isArray(intervals[name]) ? intervals[name] : null);
    const max = Math.max(1, ...names.map((n) => (bounds(n) ? bounds(n)[1] : counts[n])));
    // Laid out in the container's own pixels, so the labels are as large as the page's text.
    const width = Math.max(240, container.clientWidth || 320);
    const row = 30;
    const longest = Math.max(...names.map((n) => n.length), 4);
    const labelWidth = Math.min(width * 0.45, longest * 7.6 + 12);
    const barMax = width - labelWidth - 48;
    const height = names.length * row + 8;
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      "aria-label":
        "Bar chart: " + names.map((n) => `${n} ${counts[n]}` + (bounds(n) ? ` (${bounds(n)[0]} to ${bounds(n)[1]})` : "")).join(", "),
      class: "bars",
    });
    names.forEach((name, i) => {
      const y = 4 + i * row;
      const length = (counts[name] / max) * barMax;
      const group = svg("g", { opacity: hidden && hidden.has(name) ? 0.3 : 1 });
      group.append(
        svg("text", { x: labelWidth - 8, y: y + row / 2, "text-anchor": "end", "dominant-baseline": "central", class: "bar-label" }, name),
        svg("rect", { x: labelWidth, y: y + 5, width: barMax, height: row - 10, rx: 3, class: "bar-track" }),
        svg("rect", { x: labelWidth, y: y + 5, width: length, height: row - 10, rx: 3, fill: colours[name] }),
        svg("text", { x: labelWidth + barMax + 8, y: y + row / 2, "dominant-baseline": "central", class: "bar-value" }, counts[name]),
      );
      const b = bounds(name);
      if (b) {
        // The interval as an error bar: a line from the low to the high end, with a cap at each.
        const [x0, x1] = b.map((v) => labelWidth + (v / max) * barMax);
        const mid = y + row / 2;
        const cap = (row - 10) / 2 - 2;
        const error = svg("g", { class: "bar-interval", "data-lo": b[0], "data-hi": b[1] });
        error.append(
          svg("line", { x1: x0, y1: mid, x2: x1, y2: mid }),
          svg("line", { x1: x0, y1: mid - cap, x2: x0, y2: mid + cap }),
          svg("line", { x1: x1, y1: mid - cap, x2: x1, y2: mid + cap }),
        );
        group.append(error);
      }
      chart.append(group);
    });
    container.replaceChildren(chart);
  }

  Object.assign(R, { ResultView, saveFile });
})((window.rookery = window.rookery || {}));
