// The studio: image in, mask drawn or uploaded, generate with live progress, result out.
// One module per concern: studio/canvas.js (image, mask, overlay, settings), studio/job.js
// (submit, progress, cancel), studio/results.js (before / after, samples, continue from one),
// studio/reopen.js ("Edit again" from the history), studio/notices.js (a notice whole once, one
// line after), studio/layers.js (layers: a mask and a prompt each), studio/project.js (a job
// saved as a project file and opened again), studio/split.js (the picture split into
// layers); keys.js holds the keyboard shortcuts' table, which canvas.js and results.js fill.
// The set-up runs here, in this order.

import { initCanvas } from "./studio/canvas.js";
import { initNotices } from "./studio/notices.js";
import "./studio/job.js";
import "./studio/model-controls.js";
import { initLayers } from "./studio/layers.js";
import { initProject } from "./studio/project.js";
import { initSplit } from "./studio/split.js";
import { initResults } from "./studio/results.js";
import { reopenFromAddress } from "./studio/reopen.js";
import { startShortcuts } from "./keys.js";

initNotices();
initCanvas();
initLayers();
initProject();
initSplit();
initResults();
startShortcuts();
reopenFromAddress();
