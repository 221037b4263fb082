/* rookery web page: the zoomable photo, with each class's boxes drawn on a canvas. */
(function (R) {
  "use strict";

  // --- the zoomable photo with boxes drawn per class -----------------------------------------------------

  /** One <canvas> that draws the photo and the visible classes' boxes under a pan/zoom transform. Drawing the
   * boxes here (rather than showing the server's annotated JPEG) is what lets a class be hidden and shown. */
  class Viewer {
    constructor(stage, canvas, controls) {
      this.stage = stage;
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.controls = controls;
      this.image = null;
      this.detections = [];
      this.colours = {};
      this.hidden = new Set();
      this.drawBoxes = true;
      this.zoom = 1; // relative to "whole photo fits"
      this.ox = 0; // photo origin on the canvas, CSS px
      this.oy = 0;
      this.pointers = new Map();
      this.frame = 0;
      this.bind();
    }

    get fit() {
      if (!this.image) return 1;
      return Math.min(this.width / this.image.width, this.height / this.image.height);
    }
    get scale() {
      return this.fit * this.zoom;
    }
    get maxZoom() {
      return Math.max(4, 8 / this.fit); // up to 8 screen pixels per photo pixel
    }

    show(image, detections, colours, drawBoxes) {
      this.image = image;
      this.detections = detections || [];
      this.colours = colours;
      this.drawBoxes = drawBoxes;
      this.hidden.clear();
      this.resize();
      this.setZoom(1);
    }

    setHidden(name, hidden) {
      if (hidden) this.hidden.add(name);
      else this.hidden.delete(name);
      this.redraw();
    }

    resize() {
      const width = this.stage.clientWidth || 320;
      const aspect = this.image ? this.image.height / this.image.width : 0.66;
      const height = Math.round(Math.max(220, Math.min(width * aspect, window.innerHeight * 0.72)));
      this.stage.style.height = height + "px";
      const dpr = window.devicePixelRatio || 1;
      this.width = width;
      this.height = height;
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.width = width + "px";
      this.canvas.style.height = height + "px";
      this.clamp();
      this.redraw();
    }

    /** Zoom to `zoom` (1 = fit) keeping the photo point under (px, py) still; the centre by default. */
    setZoom(zoom, px, py) {
      const x = px === undefined ? this.width / 2 : px;
      const y = py === undefined ? this.height / 2 : py;
      const before = this.scale;
      this.zoom = Math.min(this.maxZoom, Math.max(1, zoom));
      const ratio = this.scale / before;
      this.ox = x - (x - this.ox) * ratio;
      this.oy = y - (y - this.oy) * ratio;
      this.clamp();
      this.stage.classList.toggle("zoomed", this.zoom > 1.001);
      this.syncControls();
      this.redraw();
    }

    /** Keeps the photo on screen: centred along an axis where it is smaller than the canvas. */
    clamp() {
      if (!this.image) return;
      const w = this.image.width * this.scale;
      const h = this.image.height * this.scale;
      this.ox = w <= this.width ? (this.width - w) / 2 : Math.min(0, Math.max(this.width - w, this.ox));
      this.oy = h <= this.height ? (this.height - h) / 2 : Math.min(0, Math.max(this.height - h, this.oy));
    }

    syncControls() {
      const { slider, output } = this.controls;
      // The slider is logarithmic: each step zooms by the same factor.
      slider.value = String(Math.round((100 * Math.log(this.zoom)) / Math.log(this.maxZoom)));
      const label = (this.zoom < 10 ? this.zoom.toFixed(1) : Math.round(this.zoom)) + "×";
      output.textContent = label;
      slider.setAttribute("aria-valuetext", label);
    }

    redraw() {
      if (this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.draw();
      });
    }

    draw() {
      const ctx = this.ctx;
      const dpr = window.devicePixelRatio || 1;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
      if (!this.image) return;
      const s = this.scale;
      ctx.setTransform(dpr * s, 0, 0, dpr * s, dpr * this.ox, dpr * this.oy);
      ctx.imageSmoothingEnabled = s < 4; // past 4 screen pixels per photo pixel, show the pixels as they are
      ctx.drawImage(this.image, 0, 0);
      let shown = 0;
      if (this.drawBoxes) {
        const line = 2 / s; // 2 CSS pixels whatever the zoom
        for (const d of this.detections) {
          if (this.hidden.has(d.class_name)) continue;
          const w = d.x2 - d.x1;
          const h = d.y2 - d.y1;
          // A dark halo under the class colour keeps boxes readable on light and dark ground alike.
          ctx.lineWidth = line * 2;
          ctx.strokeStyle = "rgba(0, 0, 0, 0.55)";
          ctx.strokeRect(d.x1, d.y1, w, h);
          ctx.lineWidth = line;
          ctx.strokeStyle = this.colours[d.class_name] || "#fff";
          ctx.strokeRect(d.x1, d.y1, w, h);
          shown += 1;
        }
      }
      this.canvas.dataset.shown = String(shown);
      this.canvas.dataset.hiddenClasses = [...this.hidden].join(",");
    }

    point(event) {
      const rect = this.canvas.getBoundingClientRect();
      return [event.clientX - rect.left, event.clientY - rect.top];
    }

    bind() {
      const c = this.canvas;
      c.addEventListener(
        "wheel",
        (event) => {
          if (!this.image) return;
          event.preventDefault();
          const [x, y] = this.point(event);
          const delta = event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY;
          this.setZoom(this.zoom * Math.exp(-delta * 0.0015), x, y);
        },
        { passive: false },
      );
      c.addEventListener("dblclick", (event) => {
        const [x, y] = this.point(event);
        this.setZoom(event.shiftKey ? this.zoom / 2 : this.zoom * 2, x, y);
      });
      // Drag with one pointer to pan; two pointers (touch) pinch to zoom.
      c.addEventListener("pointerdown", (event) => {
        c.setPointerCapture(event.pointerId);
        this.pointers.set(event.pointerId, this.point(event));
      });
      c.addEventListener("pointermove", (event) => {
        if (!this.pointers.has(event.pointerId)) return;
        const previous = this.pointers.get(event.pointerId);
        const now = this.point(event);
        if (this.pointers.size === 1) {
          this.ox += now[0] - previous[0];
          this.oy += now[1] - previous[1];
          this.clamp();
          this.redraw();
        } else if (this.pointers.size === 2) {
          const other = [...this.pointers.entries()].find(([id]) => id !== event.pointerId)[1];
          const before = Math.hypot(previous[0] - other[0], previous[1] - other[1]);
          const after = Math.hypot(now[0] - other[0], now[1] - other[1]);
          if (before > 0) this.setZoom((this.zoom * after) / before, (now[0] + other[0]) / 2, (now[1] + other[1]) / 2);
        }
        this.pointers.set(event.pointerId, now);
      });
      const release = (event) => this.pointers.delete(event.pointerId);
      c.addEventListener("pointerup", release);
      c.addEventListener("pointercancel", release);
      c.addEventListener("keydown", (event) => {
        const step = 40;
        const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
        if (event.key === "+" || event.key === "=") this.setZoom(this.zoom * 1.5);
        else if (event.key === "-") this.setZoom(this.zoom / 1.5);
        else if (event.key === "0") this.setZoom(1);
        else if (moves[event.key]) {
          this.ox += moves[event.key][0];
          this.oy += moves[event.key][1];
          this.clamp();
          this.redraw();
        } else return;
        event.preventDefault();
      });
      const { slider, zoomIn, zoomOut, fit } = this.controls;
      slider.addEventListener("input", () => this.setZoom(Math.pow(this.maxZoom, Number(slider.value) / 100)));
      zoomIn.addEventListener("click", () => this.setZoom(this.zoom * 1.5));
      zoomOut.addEventListener("click", () => this.setZoom(this.zoom / 1.5));
      fit.addEventListener("click", () => this.setZoom(1));
      let lastWidth = 0;
      new ResizeObserver(() => {
        const width = this.stage.clientWidth;
        if (width && width !== lastWidth) {
          lastWidth = width;
          this.resize();
        }
      }).observe(this.stage);
    }
  }

  Object.assign(R, { Viewer });
})((window.rookery = window.rookery || {}));
