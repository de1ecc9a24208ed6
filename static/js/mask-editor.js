// The canvas mask editor: paint at the image's own resolution, undo / redo, eraser, invert,
// zoom and pan. The mask canvas holds white paint with alpha; toBlob() flattens it onto black
// (white = inpaint), the polarity the studio sends as mask_mode=white_inpaints.

const HISTORY_LIMIT = 50;

export class MaskEditor {
  constructor({ viewport, stage, imageCanvas, overlayCanvas, onChange, onZoom }) {
    this.viewport = viewport;
    this.stage = stage;
    this.imageCanvas = imageCanvas;
    this.overlay = overlayCanvas;
    this.onChange = onChange || (() => {});
    this.onZoom = onZoom || (() => {});
    this.onSelect = () => {};
    this.mask = document.createElement("canvas");
    this.brushSize = 24;
    this.tool = "brush";
    this.enabled = true;
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.undoStack = [];
    this.redoStack = [];
    this.effective = null; // the server's effective mask, drawn when not painting
    this._bindPointer();
  }

  get width() { return this.mask.width; }
  get height() { return this.mask.height; }

  load(image) {
    const { width, height } = image;
    for (const canvas of [this.imageCanvas, this.overlay, this.mask]) {
      canvas.width = width;
      canvas.height = height;
    }
    this.imageCanvas.getContext("2d").drawImage(image, 0, 0);
    this.undoStack = [];
    this.redoStack = [];
    this.effective = null;
    this.fit();
    this.render();
  }

  // ----- view -------------------------------------------------------------------------
  fit() {
    const available = this.viewport.clientWidth || this.width;
    this.setZoom(Math.min(1, available / this.width), 0, 0);
  }

  setZoom(zoom, panX = this.panX, panY = this.panY) {
    this.zoom = Math.max(0.05, Math.min(8, zoom));
    this.panX = panX;
    this.panY = panY;
    this.stage.style.width = `${this.width}px`;
    this.stage.style.height = `${this.height}px`;
    this.stage.style.transform = `translate(${this.panX}px, ${this.panY}px) scale(${this.zoom})`;
    this.viewport.style.height = `${Math.ceil(this.height * Math.min(this.zoom, 1)) + 2}px`;
    this.onZoom(this.zoom);
  }

  zoomBy(factor) { this.setZoom(this.zoom * factor); }

  toImageXY(event) {
    const rect = this.overlay.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * this.width) / rect.width,
      y: ((event.clientY - rect.top) * this.height) / rect.height,
    };
  }

  // ----- painting ---------------------------------------------------------------------
  _snapshot() {
    const ctx = this.mask.getContext("2d");
    this.undoStack.push(ctx.getImageData(0, 0, this.width, this.height));
    if (this.undoStack.length > HISTORY_LIMIT) this.undoStack.shift();
    this.redoStack = [];
  }

  _stroke(from, to) {
    const ctx = this.mask.getContext("2d");
    ctx.save();
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = this.brushSize;
    ctx.beginPath();
    if (from.x === to.x && from.y === to.y) {
      ctx.arc(to.x, to.y, this.brushSize / 2, 0, Math.PI * 2);
      ctx.fill();
    } else {
      ctx.moveTo(from.x, from.y);
      ctx.lineTo(to.x, to.y);
      ctx.stroke();
    }
    ctx.restore();
  }

  _bindPointer() {
    let last = null;
    let panning = null;
    let spaceDown = false;
    window.addEventListener("keydown", (e) => { if (e.code === "Space" && e.target === document.body) { spaceDown = true; e.preventDefault(); } });
    window.addEventListener("keyup", (e) => { if (e.code === "Space") spaceDown = false; });
    this.overlay.addEventListener("pointerdown", (event) => {
      if (!this.width) return;
      if (event.button === 1 || spaceDown) {
        panning = { x: event.clientX - this.panX, y: event.clientY - this.panY };
      } else if (event.button === 0 && this.enabled && this.tool === "select") {
        this.onSelect(this.toImageXY(event));
        return;
      } else if (event.button === 0 && this.enabled) {
        this._snapshot();
        last = this.toImageXY(event);
        this.effective = null;
        this._stroke(last, last);
        this.render();
      } else {
        return;
      }
      this.overlay.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    this.overlay.addEventListener("pointermove", (event) => {
      if (panning) {
        this.setZoom(this.zoom, event.clientX - panning.x, event.clientY - panning.y);
      } else if (last) {
        const point = this.toImageXY(event);
        this._stroke(last, point);
        last = point;
        this.render();
      }
    });
    const end = () => {
      if (last) this.onChange();
      last = null;
      panning = null;
    };
    this.overlay.addEventListener("pointerup", end);
    this.overlay.addEventListener("pointercancel", end);
    this.viewport.addEventListener("wheel", (event) => {
      if (!event.ctrlKey) return;
      event.preventDefault();
      this.zoomBy(event.deltaY < 0 ? 1.1 : 1 / 1.1);
    }, { passive: false });
  }

  _restore(from, to) {
    if (!from.length) return;
    const ctx = this.mask.getContext("2d");
    to.push(ctx.getImageData(0, 0, this.width, this.height));
    ctx.putImageData(from.pop(), 0, 0);
    this.effective = null;
    this.render();
    this.onChange();
  }

  undo() { this._restore(this.undoStack, this.redoStack); }
  redo() { this._restore(this.redoStack, this.undoStack); }

  clear() {
    this._snapshot();
    this.mask.getContext("2d").clearRect(0, 0, this.width, this.height);
    this.effective = null;
    this.render();
    this.onChange();
  }

  invert() {
    this._snapshot();
    const ctx = this.mask.getContext("2d");
    const data = ctx.getImageData(0, 0, this.width, this.height);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) {
      px[i] = px[i + 1] = px[i + 2] = 255;
      px[i + 3] = 255 - px[i + 3];
    }
    ctx.putImageData(data, 0, 0);
    this.effective = null;
    this.render();
    this.onChange();
  }

  // Add a selection (a white-on-black mask image of the same size) to the painted area.
  addSelection(image) {
    this._snapshot();
    const tmp = document.createElement("canvas");
    tmp.width = this.width;
    tmp.height = this.height;
    const tctx = tmp.getContext("2d");
    tctx.drawImage(image, 0, 0, this.width, this.height);
    const data = tctx.getImageData(0, 0, this.width, this.height);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) {
      const value = px[i];
      px[i] = px[i + 1] = px[i + 2] = 255;
      px[i + 3] = value;
    }
    tctx.putImageData(data, 0, 0);
    this.mask.getContext("2d").drawImage(tmp, 0, 0);
    this.effective = null;
    this.render();
    this.onChange();
  }

  hasPaint() {
    if (!this.width) return false;
    const px = this.mask.getContext("2d").getImageData(0, 0, this.width, this.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i]) return true;
    return false;
  }

  // A PNG at the image's resolution: white where painted (inpaint), black elsewhere.
  toBlob() {
    const flat = document.createElement("canvas");
    flat.width = this.width;
    flat.height = this.height;
    const ctx = flat.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, flat.width, flat.height);
    ctx.drawImage(this.mask, 0, 0);
    return new Promise((resolve) => flat.toBlob(resolve, "image/png"));
  }

  // ----- overlay ------------------------------------------------------------------------
  // The server's effective mask (after polarity, invert, grow and blur), or while painting
  // the raw strokes, tinted red.
  showEffective(image) {
    this.effective = image;
    this.render();
  }

  render() {
    const ctx = this.overlay.getContext("2d");
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    if (!this.width) return;
    if (this.effective) {
      const tmp = document.createElement("canvas");
      tmp.width = this.width;
      tmp.height = this.height;
      const tctx = tmp.getContext("2d");
      tctx.drawImage(this.effective, 0, 0, this.width, this.height);
      const data = tctx.getImageData(0, 0, this.width, this.height);
      const px = data.data;
      for (let i = 0; i < px.length; i += 4) {
        const value = px[i];
        px[i] = 255; px[i + 1] = 32; px[i + 2] = 80; px[i + 3] = Math.round(value * 0.55);
      }
      ctx.putImageData(data, 0, 0);
      return;
    }
    ctx.save();
    ctx.drawImage(this.mask, 0, 0);
    ctx.globalCompositeOperation = "source-in";
    ctx.fillStyle = "rgba(255, 32, 80, 0.55)";
    ctx.fillRect(0, 0, this.width, this.height);
    ctx.restore();
  }
}
