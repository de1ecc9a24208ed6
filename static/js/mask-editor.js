// The canvas mask editor: paint at the image's own resolution, undo / redo, eraser, invert,
// a lasso and a rectangle (filled on release; Alt takes away), zoom about the cursor, pan
// (Space + drag, middle button, two fingers), pinch zoom, a brush outline, and the outpaint
// area around the image. The mask canvas holds white paint with alpha; toBlob() flattens it
// onto black (white = inpaint), the polarity the studio sends as mask_mode=white_inpaints.

const HISTORY_LIMIT = 50;
// Tools that paint along the pointer (with the brush outline), and those that draw a shape.
const BRUSH_TOOLS = ["brush", "eraser"];
const SHAPE_TOOLS = ["lasso", "rectangle"];
const MIN_ZOOM = 0.05;
const MAX_ZOOM = 8;


export class MaskEditor {
  // ``tint`` ([r, g, b]) and ``tintOpacity``: the colour of "regenerated" in every picture the
  // user sees (the server's, handed over by the page).
  constructor({ viewport, stage, imageCanvas, overlayCanvas, cursor, tint, tintOpacity, onChange, onZoom, onHistory }) {
    this.viewport = viewport;
    this.stage = stage;
    this.imageCanvas = imageCanvas;
    this.overlay = overlayCanvas;
    this.cursor = cursor;
    this.tint = tint;
    this.tintOpacity = tintOpacity;
    this.onChange = onChange || (() => {});
    this.onZoom = onZoom || (() => {});
    this.onHistory = onHistory || (() => {});
    this.onSelect = () => {};
    this.onObjectEnd = () => {};
    this.objectBase = null; // the mask before the object being selected (Select object)
    this.mask = document.createElement("canvas");
    this.maskContext = this.mask.getContext("2d", { willReadFrequently: true });
    this.overlayContext = this.overlay.getContext("2d", { willReadFrequently: true });
    this.brushSize = 24;
    this.brushHardness = 1; // 0..1: the share of the radius painted at full strength
    this.brushOpacity = 1;  // 0..1: the strength painted (below 1: gray)
    this.tool = "brush";
    this.enabled = true;
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.pad = { left: 0, top: 0, right: 0, bottom: 0 }; // the outpaint area, in image pixels
    this.undoStack = [];
    this.redoStack = [];
    this.effective = null; // the server's effective mask of the whole canvas, drawn when not painting
    this.spaceDown = false;
    this.fitted = true; // the view is the fitted one (no zoom or pan by the user since)
    this.painting = false; // a stroke or a shape is being drawn
    this._bindPointer();
    // When something above the canvas appears or goes (a message, a wrapped toolbar), the
    // viewport changes size: a fitted view is fitted again, so the image is never cut off.
    new ResizeObserver(() => { if (this.fitted && !this._fitting) this.fit(); }).observe(this.viewport);
  }

  get width() { return this.mask.width; }
  get height() { return this.mask.height; }
  get canvasWidth() { return this.width + this.pad.left + this.pad.right; }
  get canvasHeight() { return this.height + this.pad.top + this.pad.bottom; }

  load(image) {
    const { width, height } = image;
    for (const canvas of [this.imageCanvas, this.mask]) {
      canvas.width = width;
      canvas.height = height;
    }
    this.imageCanvas.getContext("2d").drawImage(image, 0, 0);
    this.objectBase = null;
    this.undoStack = [];
    this.redoStack = [];
    this.effective = null;
    this._layout();
    this.fit();
    this.render();
    this.onHistory();
  }

  // The outpaint sides (pixels added around the image): the overlay grows to show them.
  setOutpaint(sides) {
    const pad = { left: 0, top: 0, right: 0, bottom: 0, ...sides };
    if (["left", "top", "right", "bottom"].every((side) => pad[side] === this.pad[side])) return;
    this.pad = pad;
    this.effective = null;
    if (!this.width) return;
    this._layout();
    this.fit();
    this.render();
  }

  _layout() {
    this.overlay.width = this.canvasWidth;
    this.overlay.height = this.canvasHeight;
    this.stage.style.width = `${this.canvasWidth}px`;
    this.stage.style.height = `${this.canvasHeight}px`;
    this.imageCanvas.style.left = `${this.pad.left}px`;
    this.imageCanvas.style.top = `${this.pad.top}px`;
  }

  // ----- view -------------------------------------------------------------------------
  // The whole canvas, centred, at most 100%. Where the page gives the viewport no height
  // (phone layout), the viewport takes the fitted image's height, up to 65% of the screen.
  fit() {
    if (!this.width) return;
    const width = this.viewport.clientWidth || this.canvasWidth;
    let zoom = Math.min(1, width / this.canvasWidth);
    if (this.viewport.dataset.autoHeight === "true") {
      const height = Math.max(160, Math.min(this.canvasHeight * zoom, window.innerHeight * 0.65));
      this.viewport.style.height = `${Math.ceil(height)}px`;
    }
    const height = this.viewport.clientHeight || this.canvasHeight;
    zoom = Math.min(zoom, height / this.canvasHeight);
    this._fitting = true;
    this.setZoom(zoom, (width - this.canvasWidth * zoom) / 2, (height - this.canvasHeight * zoom) / 2);
    this._fitting = false;
    this.fitted = true;
  }

  setZoom(zoom, panX = this.panX, panY = this.panY) {
    if (!this._fitting) this.fitted = false;
    this.zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, zoom));
    this.panX = panX;
    this.panY = panY;
    this.stage.style.transform = `translate(${this.panX}px, ${this.panY}px) scale(${this.zoom})`;
    this.onZoom(this.zoom);
  }

  // Zoom by ``factor`` keeping the point (x, y) of the viewport (default: its centre) still.
  zoomAt(factor, x = this.viewport.clientWidth / 2, y = this.viewport.clientHeight / 2) {
    const zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, this.zoom * factor));
    const scale = zoom / this.zoom;
    this.setZoom(zoom, x - (x - this.panX) * scale, y - (y - this.panY) * scale);
  }

  zoomBy(factor) { this.zoomAt(factor); }

  _viewportXY(event) {
    const rect = this.viewport.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  toImageXY(event) {
    const rect = this.imageCanvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * this.width) / rect.width,
      y: ((event.clientY - rect.top) * this.height) / rect.height,
    };
  }

  // ----- painting ---------------------------------------------------------------------
  _snapshot() {
    this.endObject(); // any other edit ends the object being selected
    const ctx = this.maskContext;
    this.undoStack.push(ctx.getImageData(0, 0, this.width, this.height));
    if (this.undoStack.length > HISTORY_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.onHistory();
  }

  _stroke(from, to) {
    if (this.brushHardness < 1 || this.brushOpacity < 1) {
      this._softStroke(from, to);
      return;
    }
    const ctx = this.maskContext;
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

  // The soft brush: round dabs along the segment, each at ``brushOpacity`` inside the hard
  // core and fading to nothing at the rim. Within one stroke the dabs take the maximum (a
  // stroke paints at most its opacity, however often it passes); the brush then raises the
  // mask to the stroke's value, the eraser lowers it by as much.
  _softStroke(from, to) {
    const [w, h] = [this.width, this.height];
    if (!this._softBase) {
      this._softBase = this.maskContext.getImageData(0, 0, w, h);
      this._softStrength = new Float32Array(w * h);
    }
    const radius = this.brushSize / 2;
    const core = radius * this.brushHardness;
    const length = Math.hypot(to.x - from.x, to.y - from.y);
    const dabs = Math.max(1, Math.ceil(length / Math.max(1, radius / 4)));
    const strength = this._softStrength;
    const box = { x0: w, y0: h, x1: 0, y1: 0 };
    for (let d = 0; d <= dabs; d++) {
      const cx = from.x + ((to.x - from.x) * d) / dabs;
      const cy = from.y + ((to.y - from.y) * d) / dabs;
      const x0 = Math.max(0, Math.floor(cx - radius)), x1 = Math.min(w - 1, Math.ceil(cx + radius));
      const y0 = Math.max(0, Math.floor(cy - radius)), y1 = Math.min(h - 1, Math.ceil(cy + radius));
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const r = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
          if (r >= radius) continue;
          const t = r <= core ? 1 : 1 - (r - core) / (radius - core);
          const value = this.brushOpacity * t * t * (3 - 2 * t); // smoothstep to the rim
          const i = y * w + x;
          if (value > strength[i]) strength[i] = value;
        }
      }
      box.x0 = Math.min(box.x0, x0); box.y0 = Math.min(box.y0, y0);
      box.x1 = Math.max(box.x1, x1); box.y1 = Math.max(box.y1, y1);
    }
    if (box.x1 < box.x0 || box.y1 < box.y0) return;
    const [bw, bh] = [box.x1 - box.x0 + 1, box.y1 - box.y0 + 1];
    const out = this.maskContext.getImageData(box.x0, box.y0, bw, bh);
    const base = this._softBase.data;
    const eraser = this.tool === "eraser";
    for (let y = 0; y < bh; y++) {
      for (let x = 0; x < bw; x++) {
        const i = (box.y0 + y) * w + box.x0 + x;
        const before = base[i * 4 + 3] / 255;
        const alpha = eraser ? before * (1 - strength[i]) : Math.max(before, strength[i]);
        const o = (y * bw + x) * 4;
        out.data[o] = out.data[o + 1] = out.data[o + 2] = 255;
        out.data[o + 3] = Math.round(alpha * 255);
      }
    }
    this.maskContext.putImageData(out, box.x0, box.y0);
  }

  _endStroke() {
    this._softBase = null;
    this._softStrength = null;
  }

  // Space held pans: the page calls this as Space goes down and comes up (the studio's
  // shortcut, studio/canvas.js).
  holdSpace(held) {
    this.spaceDown = held;
    this.overlay.classList.toggle("panning", held);
  }

  _bindPointer() {
    let stroke = null;     // {last, pointerId} while painting
    let shape = null;      // {points, subtract, pointerId} while drawing a lasso or a rectangle
    let selecting = null;  // {start, shiftKey, pointerId} while the select tool's pointer is down
    let panning = null;    // {x, y, pointerId} while panning with one pointer
    const touches = new Map(); // pointerId -> {x, y} of the fingers on the canvas
    let gesture = null;    // two fingers: {distance, centre}

    const twoFingers = () => {
      const [a, b] = [...touches.values()];
      return { distance: Math.hypot(a.x - b.x, a.y - b.y), centre: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 } };
    };
    const cancelStroke = () => {
      // A second finger turns a stroke just begun into a gesture: the stroke is taken back.
      this.painting = false;
      if (shape) { shape = null; this.render(); }
      if (!stroke) return;
      const ctx = this.maskContext;
      ctx.putImageData(this.undoStack.pop(), 0, 0);
      this.onHistory();
      stroke = null;
      this.render();
    };

    this.overlay.addEventListener("pointerdown", (event) => {
      if (!this.width) return;
      if (event.pointerType === "touch") {
        touches.set(event.pointerId, this._viewportXY(event));
        this.overlay.setPointerCapture(event.pointerId);
        event.preventDefault();
        if (touches.size === 2) {
          cancelStroke();
          gesture = twoFingers();
          return;
        }
        if (touches.size > 2) return;
      }
      if (event.button === 1 || this.spaceDown) {
        const at = this._viewportXY(event);
        panning = { x: at.x - this.panX, y: at.y - this.panY, pointerId: event.pointerId };
      } else if (event.button === 0 && this.enabled && this.tool === "select") {
        // A click selects at a point, a drag a box: told when the pointer is released.
        selecting = { start: this.toImageXY(event), shiftKey: event.shiftKey, pointerId: event.pointerId };
      } else if (event.button === 0 && this.enabled && SHAPE_TOOLS.includes(this.tool)) {
        // A lasso or a rectangle: filled when the pointer is released, one undo step then (a
        // shape that encloses nothing leaves the history as it was).
        this.endObject();
        shape = { points: [this.toImageXY(event)], subtract: event.altKey, tool: this.tool, pointerId: event.pointerId };
        this.effective = null;
        this.painting = true;
      } else if (event.button === 0 && this.enabled) {
        this._snapshot();
        const point = this.toImageXY(event);
        stroke = { last: point, pointerId: event.pointerId };
        this.effective = null;
        this.painting = true;
        this._endStroke(); // a new stroke: the soft brush starts from the mask as it is now
        this._stroke(point, point);
        this.render();
      } else {
        return;
      }
      this.overlay.setPointerCapture(event.pointerId);
      event.preventDefault();
    });

    this.overlay.addEventListener("pointermove", (event) => {
      this._moveCursor(event);
      if (touches.has(event.pointerId)) {
        touches.set(event.pointerId, this._viewportXY(event));
        if (gesture && touches.size === 2) {
          const now = twoFingers();
          const factor = gesture.distance > 0 ? now.distance / gesture.distance : 1;
          // Pan with the fingers' centre, zoom about it by how far they spread.
          this.setZoom(this.zoom, this.panX + now.centre.x - gesture.centre.x, this.panY + now.centre.y - gesture.centre.y);
          if (Math.abs(factor - 1) > 0.01) this.zoomAt(factor, now.centre.x, now.centre.y);
          gesture = now;
          return;
        }
      }
      if (panning && panning.pointerId === event.pointerId) {
        const at = this._viewportXY(event);
        this.setZoom(this.zoom, at.x - panning.x, at.y - panning.y);
      } else if (stroke && stroke.pointerId === event.pointerId) {
        const point = this.toImageXY(event);
        this._stroke(stroke.last, point);
        stroke.last = point;
        this.render();
      } else if (shape && shape.pointerId === event.pointerId) {
        const point = this.toImageXY(event);
        if (shape.tool === "rectangle") shape.points[1] = point;
        else shape.points.push(point);
        this.render();
        this._drawOutline(shape);
      }
    });

    const end = (event) => {
      if (selecting && selecting.pointerId === event.pointerId) {
        const { start, shiftKey } = selecting;
        selecting = null;
        if (event.type === "pointerup") this.onSelect({ ...this.toImageXY(event), start, shiftKey });
      }
      touches.delete(event.pointerId);
      if (touches.size < 2) gesture = null;
      if (stroke && stroke.pointerId === event.pointerId) {
        stroke = null;
        this.painting = false;
        this._endStroke();
        this.onChange();
      }
      if (shape && shape.pointerId === event.pointerId) {
        const done = shape;
        shape = null;
        this.painting = false;
        if (event.type === "pointerup" && this.fillShape(done)) this.onChange();
        else this.render(); // nothing enclosed (a click, a line), or the pointer was lost
      }
      if (panning && panning.pointerId === event.pointerId) panning = null;
    };
    this.overlay.addEventListener("pointerup", end);
    this.overlay.addEventListener("pointercancel", end);
    this.overlay.addEventListener("pointerleave", () => { this.cursor.hidden = true; });

    this.viewport.addEventListener("wheel", (event) => {
      if (!event.ctrlKey || !this.width) return;
      event.preventDefault();
      const at = this._viewportXY(event);
      this.zoomAt(event.deltaY < 0 ? 1.1 : 1 / 1.1, at.x, at.y);
    }, { passive: false });
  }

  // The brush outline: a circle of the brush's size, at the current zoom, under the pointer.
  _moveCursor(event) {
    const painting = this.enabled && BRUSH_TOOLS.includes(this.tool) && !this.spaceDown && event.pointerType !== "touch";
    this.cursor.hidden = !painting;
    if (!painting) return;
    const at = this._viewportXY(event);
    const size = this.brushSize * this.zoom;
    Object.assign(this.cursor.style, {
      width: `${size}px`,
      height: `${size}px`,
      transform: `translate(${at.x - size / 2}px, ${at.y - size / 2}px)`,
    });
    this.cursor.classList.toggle("eraser", this.tool === "eraser");
  }

  _restore(from, to) {
    if (!from.length) return;
    this.endObject();
    const ctx = this.maskContext;
    to.push(ctx.getImageData(0, 0, this.width, this.height));
    ctx.putImageData(from.pop(), 0, 0);
    this.effective = null;
    this.render();
    this.onHistory();
    this.onChange();
  }

  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }
  undo() { this._restore(this.undoStack, this.redoStack); }
  redo() { this._restore(this.redoStack, this.undoStack); }

  clear() {
    if (!this.hasPaint()) return;
    this._snapshot();
    this.maskContext.clearRect(0, 0, this.width, this.height);
    this.effective = null;
    this.render();
    this.onChange();
  }

  invert() {
    this._snapshot();
    const ctx = this.maskContext;
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
    this._drawSelection(image);
  }

  // The object being selected (Select object): each new answer for it replaces the last one
  // in the mask, so the whole object is one undo step. endObject() starts another.
  setObjectSelection(image) {
    if (this.objectBase) {
      this.maskContext.putImageData(this.objectBase, 0, 0);
    } else {
      this._snapshot();
      this.objectBase = this.maskContext.getImageData(0, 0, this.width, this.height);
    }
    this._drawSelection(image);
  }

  endObject() {
    if (!this.objectBase) return;
    this.objectBase = null;
    this.onObjectEnd();
  }

  _drawSelection(image) {
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
    this.maskContext.drawImage(tmp, 0, 0);
    this.effective = null;
    this.render();
    this.onChange();
  }

  // ----- lasso and rectangle ------------------------------------------------------------
  // A shape's outline (image coordinates): a closed freehand path (the lasso), or the
  // rectangle between the first point and the last.
  _outlinePath(ctx, { points, tool }, dx = 0, dy = 0) {
    ctx.beginPath();
    if (tool === "rectangle") {
      const [a, b] = [points[0], points[points.length - 1]];
      ctx.rect(Math.min(a.x, b.x) + dx, Math.min(a.y, b.y) + dy, Math.abs(b.x - a.x), Math.abs(b.y - a.y));
      return;
    }
    ctx.moveTo(points[0].x + dx, points[0].y + dy);
    for (const p of points.slice(1)) ctx.lineTo(p.x + dx, p.y + dy);
    ctx.closePath();
  }

  _drawOutline(shape) {
    if (shape.points.length < 2) return;
    const ctx = this.overlayContext;
    ctx.save();
    this._outlinePath(ctx, shape, this.pad.left, this.pad.top);
    ctx.lineWidth = 1.5 / this.zoom;
    ctx.setLineDash([6 / this.zoom, 4 / this.zoom]);
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    ctx.lineDashOffset = 6 / this.zoom;
    ctx.strokeStyle = "#000";
    ctx.stroke();
    ctx.restore();
  }

  // Fill a shape ({points, tool: "lasso" | "rectangle", subtract}) into the mask, or take it
  // away, as one undo step. False, and no step, when it encloses nothing (a click, a line).
  fillShape(shape) {
    const { points, tool, subtract = false } = shape;
    const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
    const wide = Math.max(...xs) - Math.min(...xs), high = Math.max(...ys) - Math.min(...ys);
    const enough = tool === "rectangle" ? points.length >= 2 : points.length >= 3;
    if (!enough || wide < 1 || high < 1) return false;
    this._snapshot();
    const ctx = this.maskContext;
    ctx.save();
    ctx.globalCompositeOperation = subtract ? "destination-out" : "source-over";
    ctx.fillStyle = "#fff";
    this._outlinePath(ctx, shape);
    ctx.fill();
    ctx.restore();
    this.effective = null;
    this.render();
    return true;
  }

  // ----- masks in and out ---------------------------------------------------------------
  // A mask picture (white = regenerated; gray in part) replaces what is painted, as one undo
  // step: "Load mask", "Edit again" (scaled to the image), "Continue from this" (``at``: where
  // its top-left corner lies on the new image, unscaled: a mask kept from before an outpaint).
  loadMask(image, at = null) {
    this._snapshot();
    const flat = this._onBlack((ctx) => {
      if (at) ctx.drawImage(image, at.x, at.y);
      else ctx.drawImage(image, 0, 0, this.width, this.height);
    });
    this.maskContext.clearRect(0, 0, this.width, this.height);
    this._drawSelection(flat);
  }

  // Another mask in the editor (the studio's layers: one editor, the active layer's mask in
  // it). What is painted now goes out as a picture (white = regenerated, on black) with its
  // own undo history; ``picture`` (such a picture, or null: nothing painted) comes in with
  // ``history`` (what it went out with before, or null: none). No undo step: undo stays
  // within a layer.
  swapMask(picture, history = null) {
    this.endObject();
    const out = { picture: this.maskPicture(), history: { undo: this.undoStack, redo: this.redoStack } };
    this.undoStack = history ? history.undo : [];
    this.redoStack = history ? history.redo : [];
    this.maskContext.clearRect(0, 0, this.width, this.height);
    this.onHistory();
    if (picture) {
      this._drawSelection(picture); // (renders and tells onChange)
    } else {
      this.effective = null;
      this.render();
      this.onChange();
    }
    return out;
  }

  // What is painted now, as a picture of its own (white = regenerated, on black).
  maskPicture() {
    return this._onBlack((ctx) => ctx.drawImage(this.mask, 0, 0));
  }

  // A canvas of the image's size, black, with ``draw(ctx)`` drawn on it.
  _onBlack(draw) {
    const canvas = document.createElement("canvas");
    canvas.width = this.width;
    canvas.height = this.height;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    draw(ctx);
    return canvas;
  }

  hasPaint() {
    if (!this.width) return false;
    const px = this.maskContext.getImageData(0, 0, this.width, this.height).data;
    for (let i = 3; i < px.length; i += 4) if (px[i]) return true;
    return false;
  }

  // A PNG at the image's resolution: white where painted (inpaint), black elsewhere.
  toBlob() {
    return new Promise((resolve) => this.maskPicture().toBlob(resolve, "image/png"));
  }

  // ----- overlay ------------------------------------------------------------------------
  // The server's effective mask of the whole canvas (after polarity, invert, grow, blur and
  // the outpaint area), or while painting the raw strokes and the outpaint area, tinted red.
  showEffective(image) {
    // An answer that arrives while a stroke or a shape is being drawn was computed from the
    // mask before it: the live strokes stay on show, and the release asks for a new one.
    if (this.painting) return;
    this.effective = image;
    this.render();
  }

  render() {
    const ctx = this.overlayContext;
    const [w, h] = [this.canvasWidth, this.canvasHeight];
    ctx.clearRect(0, 0, w, h);
    if (!this.width) return;
    const [r, g, b] = this.tint;
    if (this.effective) {
      ctx.drawImage(this.effective, 0, 0, w, h);
      const data = ctx.getImageData(0, 0, w, h);
      const px = data.data;
      for (let i = 0; i < px.length; i += 4) {
        const value = px[i];
        px[i] = r; px[i + 1] = g; px[i + 2] = b; px[i + 3] = Math.round(value * this.tintOpacity);
      }
      ctx.putImageData(data, 0, 0);
      return;
    }
    ctx.save();
    ctx.fillStyle = "#fff";
    const { left, top } = this.pad;
    ctx.fillRect(0, 0, w, top);
    ctx.fillRect(0, top + this.height, w, h - top - this.height);
    ctx.fillRect(0, top, left, this.height);
    ctx.fillRect(left + this.width, top, w - left - this.width, this.height);
    ctx.drawImage(this.mask, left, top);
    ctx.globalCompositeOperation = "source-in";
    ctx.fillStyle = `rgba(${r}, ${g}, ${b}, ${this.tintOpacity})`;
    ctx.fillRect(0, 0, w, h);
    ctx.restore();
  }
}
