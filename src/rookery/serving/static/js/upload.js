/* rookery web page: the upload page (file picker or drag-and-drop, progress, a list of photos counted). */
(function (R) {
  "use strict";

  const { body, BASE, API, MB, $, el, formatMB, withInterval, sumIntervals, showError, clearError, ApiError, hasKey, keyHeaders, detailFrom, handleApiError, askForKey, ResultView } = R;

  // --- the upload page --------------------------------------------------------------------------------------

  /** Groups files into uploads under the server's size limit, so many big photos still go through. */
  function batches(files, limitBytes) {
    const out = [];
    let current = [];
    let size = 0;
    for (const file of files) {
      if (current.length && (size + file.size > limitBytes || current.length >= 20)) {
        out.push(current);
        current = [];
        size = 0;
      }
      current.push(file);
      size += file.size;
    }
    if (current.length) out.push(current);
    return out;
  }

  function postPhotos(files, fields, onProgress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const file of files) form.append("files", file, file.name);
      for (const [name, value] of Object.entries(fields)) form.append(name, value);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", API + "/predict");
      for (const [name, value] of Object.entries(keyHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress("uploading", event.loaded / event.total);
      });
      xhr.upload.addEventListener("load", () => onProgress("counting", 1));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(JSON.parse(xhr.responseText));
          } catch (e) {
            reject(new ApiError(xhr.status, "The server's answer could not be read; try again."));
          }
        } else reject(new ApiError(xhr.status, detailFrom(xhr.status, xhr.responseText)));
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, detailFrom(0, ""))));
      xhr.send(form);
    });
  }

  function setupUploadPage() {
    const input = $("#files");
    const dropzone = $("#dropzone");
    const form = $("#upload-form");
    const progress = $("#progress");
    const bar = $("#progress-bar");
    const progressText = $("#progress-text");
    const limitBytes = Number(body.dataset.maxUploadMb || 50) * MB;
    // The limit is on the whole request: leave room for the multipart headers around each file.
    const batchBytes = limitBytes * 0.98 - 64 * 1024;
    const view = new ResultView();
    let busy = false;
    // The server says it has a key: ask before the first upload rather than after it is refused.
    if (body.dataset.keyRequired === "true" && !hasKey()) {
      askForKey("This server asks for an API key. It is kept in this browser only.", null);
    }

    $("#choose").addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      const files = [...input.files];
      input.value = ""; // choosing the same photo again must count it again
      if (files.length) count(files);
    });
    for (const name of ["dragenter", "dragover"]) {
      dropzone.addEventListener(name, (event) => {
        event.preventDefault();
        dropzone.classList.add("over");
      });
    }
    for (const name of ["dragleave", "drop"]) {
      dropzone.addEventListener(name, (event) => {
        event.preventDefault();
        dropzone.classList.remove("over");
      });
    }
    dropzone.addEventListener("drop", (event) => {
      const files = [...((event.dataTransfer && event.dataTransfer.files) || [])];
      if (files.length) count(files);
    });
    // A photo dropped next to the zone must not make the browser leave the page to open it.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());

    function optionFields() {
      const fields = { return_image: "false" };
      for (const name of ["conf", "tile", "overlap"]) {
        const value = form.elements[name].value.trim();
        if (value) fields[name] = value;
      }
      return fields;
    }

    function setProgress(state, fraction, text) {
      progress.hidden = false;
      progress.dataset.state = state;
      if (fraction === null) bar.removeAttribute("value"); // indeterminate while the server counts
      else bar.value = Math.round(fraction * 100);
      progressText.textContent = text;
    }

    async function count(files) {
      if (busy) return;
      busy = true;
      clearError();
      $("#batch").hidden = true;
      const errors = [];
      const results = [];
      const fits = files.filter((file) => {
        if (file.size <= batchBytes) return true;
        errors.push({ file_name: file.name, detail: `${formatMB(file.size)} is more than the ${formatMB(limitBytes)} this server accepts per upload.` });
        return false;
      });
      const groups = batches(fits, batchBytes);
      const totalBytes = fits.reduce((sum, file) => sum + file.size, 0) || 1;
      const what = files.length === 1 ? "1 photo" : `${files.length} photos`;
      let sentBytes = 0;
      try {
        for (const group of groups) {
          const groupBytes = group.reduce((sum, file) => sum + file.size, 0);
          let answer;
          try {
            answer = await postPhotos(group, optionFields(), (state, fraction) => {
              const done = (sentBytes + fraction * groupBytes) / totalBytes;
              if (state === "uploading") setProgress(state, done, `Uploading ${what}… ${Math.round(done * 100)}%`);
              else setProgress("counting", null, group.length === 1 ? "Counting…" : `Counting ${group.length} photos…`);
            });
          } catch (error) {
            if (error instanceof ApiError && error.status === 401) throw error;
            // The whole upload was refused (every photo in it failed): one sentence for the group.
            for (const file of group) errors.push({ file_name: file.name, detail: error.detail || error.message });
            sentBytes += groupBytes;
            continue;
          }
          sentBytes += groupBytes;
          // Each result names its file; two photos may share a name (and the server may tidy a name), so
          // take files in upload order among those of that name, else the next one not yet taken.
          const unused = [...group];
          for (const prediction of answer.results) {
            let i = unused.findIndex((file) => file.name === prediction.file_name);
            if (i < 0) i = 0;
            const [file] = unused.splice(i, 1);
            results.push({ prediction, file: file || null });
          }
          errors.push(...(answer.errors || []));
        }
      } catch (error) {
        busy = false;
        progress.hidden = true;
        progress.dataset.state = "error";
        handleApiError(error, () => count(files));
        return;
      }
      busy = false;
      setProgress("done", 1, results.length ? `Counted ${results.length} of ${what}.` : "Nothing was counted.");
      if (!results.length) {
        progress.hidden = true; // the error says it all
        progress.dataset.state = "error";
        if (errors.length === 1) showError(errors[0].detail);
        else showError(`None of the ${what} could be counted:`, errors.map((e) => `${e.file_name}: ${e.detail}`));
        $("#error").scrollIntoView({ behavior: "smooth", block: "center" });
        return;
      }
      showBatch(results, errors);
      await view.show(results[0].prediction, results[0].file);
      // On a phone the result starts below the upload form: bring it (or the list of photos) into view.
      (results.length > 1 || errors.length ? $("#batch") : $("#result")).scrollIntoView({ behavior: "smooth", block: "start" });
    }

    function showBatch(results, errors) {
      const rows = results.map(({ prediction, file }, i) =>
        el(
          "tr",
          { "data-id": prediction.id, class: i === 0 ? "selected" : null },
          el("th", { scope: "row" }, el("a", { href: `${BASE}/predictions/${encodeURIComponent(prediction.id)}` }, prediction.file_name)),
          el("td", { class: "num" }, withInterval(prediction.total, prediction.total_interval)),
          el(
            "td",
            {},
            el(
              "button",
              {
                type: "button",
                onclick: (event) => {
                  document.querySelectorAll("#batch-table tr.selected").forEach((tr) => tr.classList.remove("selected"));
                  event.currentTarget.closest("tr").classList.add("selected");
                  view.show(prediction, file);
                  $("#result").scrollIntoView({ behavior: "smooth", block: "start" });
                },
              },
              "Show",
            ),
          ),
        ),
      );
      if (results.length > 1) {
        const total = results.reduce((sum, r) => sum + r.prediction.total, 0);
        const bounds = sumIntervals(results.map((r) => r.prediction.total_interval)); // conservative, like each total's
        rows.push(el("tr", { class: "sum" }, el("th", { scope: "row" }, "All photos"), el("td", { class: "num" }, withInterval(total, bounds)), el("td")));
      }
      $("#batch-table tbody").replaceChildren(...rows);
      $("#batch-errors").replaceChildren(...errors.map((e) => el("li", {}, `${e.file_name}: ${e.detail}`)));
      // One photo counted cleanly needs no list: the result view says it all.
      $("#batch").hidden = results.length === 1 && errors.length === 0;
    }
  }

  Object.assign(R, { setupUploadPage });
})((window.rookery = window.rookery || {}));
