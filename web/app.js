// @ts-check
// The page: pick a model, a class and a seed, draw a grid, walk the latent space, download
// the grid. Everything it generates is made here, by ./ganlite.js; the server only hands out
// files (v1/models for the list of cards, models/NAME.onnx for the models).

import * as ganlite from "./ganlite.js";

/** @type {(id: string) => any} */
const $ = (id) => document.getElementById(id);
const ui = {
  /** @type {HTMLFormElement} */ form: $("controls"),
  /** @type {HTMLSelectElement} */ model: $("model"),
  /** @type {HTMLSelectElement} */ label: $("label"),
  /** @type {HTMLLabelElement} */ labelCaption: $("label-caption"),
  /** @type {HTMLInputElement} */ seed: $("seed"),
  /** @type {HTMLSelectElement} */ size: $("size"),
  /** @type {HTMLButtonElement} */ draw: $("draw"),
  /** @type {HTMLButtonElement} */ walk: $("walk"),
  /** @type {HTMLButtonElement} */ download: $("download"),
  /** @type {HTMLParagraphElement} */ error: $("error"),
  /** @type {HTMLParagraphElement} */ status: $("status"),
  /** @type {HTMLCanvasElement} */ canvas: $("grid"),
};
// The grid's layout is ganlite.save_grid's: a 2-pixel gap of gray 48, enlarged twice, so a
// downloaded grid looks like `ganlite generate --grid`'s.
const GAP = 2, SCALE = 2, BACKGROUND = 48, SIDE = 28;
const WALK_FRAMES = 16; // frames from one set of latents to the next

/** @type {object[]} the generators' cards, from v1/models */
let cards = [];
/** @type {Map<string, Promise<ganlite.Generator>>} */
const generators = new Map();
/** What the canvas shows: {gen, z, labels, n, columns, seed, leg, what} */
let shown = null;
let walking = 0; // the running walk's number; 0: none
let walks = 0;
let drawToken = 0; // a newer draw makes an older one's result stale

function setState(state) { document.body.dataset.state = state; }

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
  setState("error");
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

function generator(name) {
  if (!generators.has(name)) {
    const url = new URL(`models/${encodeURIComponent(name)}.onnx`, document.baseURI);
    const loading = ganlite.load(url);
    loading.catch(() => generators.delete(name)); // a failed load is tried again next time
    generators.set(name, loading);
  }
  return generators.get(name);
}

function cardOf(name) { return cards.find((c) => c.name === name); }

function fillLabels(card, wanted) {
  const mnist = card.dataset === "mnist";
  ui.labelCaption.textContent = mnist ? "Digit" : "Class";
  ui.label.replaceChildren(new Option("any (random)", ""));
  if (!card.conditional) {
    ui.label.disabled = true;
    ui.label.options[0].text = "(unconditional model)";
    return;
  }
  ui.label.disabled = false;
  card.class_names.forEach((name, i) => {
    ui.label.add(new Option(mnist ? name : `${i}: ${name}`, String(i)));
  });
  if (wanted !== null && [...ui.label.options].some((o) => o.value === wanted)) {
    ui.label.value = wanted;
  }
}

function readSeed() {
  const seed = Number(ui.seed.value);
  if (ui.seed.value.trim() === "" || !Number.isSafeInteger(seed) || seed < 0) {
    throw new ganlite.UsageError(`seed must be an integer between 0 and ` +
                                 `${Number.MAX_SAFE_INTEGER}, got "${ui.seed.value}"`);
  }
  return seed;
}

/** Draw uint8 images (n * 784) on the canvas as a grid `columns` wide. */
function render(images, n, columns, description) {
  const rows = Math.ceil(n / columns);
  const width = (columns * (SIDE + GAP) + GAP) * SCALE;
  const height = (rows * (SIDE + GAP) + GAP) * SCALE;
  if (ui.canvas.width !== width || ui.canvas.height !== height) {
    ui.canvas.width = width;
    ui.canvas.height = height;
  }
  const context = ui.canvas.getContext("2d");
  const picture = context.createImageData(width, height);
  const rgba = new Uint32Array(picture.data.buffer);
  const gray = (v) => 0xff000000 | (v << 16) | (v << 8) | v; // little-endian RGBA
  rgba.fill(gray(BACKGROUND));
  for (let i = 0; i < n; i++) {
    const x0 = (GAP + (i % columns) * (SIDE + GAP)) * SCALE;
    const y0 = (GAP + Math.floor(i / columns) * (SIDE + GAP)) * SCALE;
    for (let y = 0; y < SIDE * SCALE; y++) {
      const source = i * SIDE * SIDE + Math.floor(y / SCALE) * SIDE;
      const row = (y0 + y) * width + x0;
      for (let x = 0; x < SIDE * SCALE; x++) rgba[row + x] = gray(images[source + Math.floor(x / SCALE)]);
    }
  }
  context.putImageData(picture, 0, 0);
  ui.canvas.setAttribute("aria-label", description);
  ui.canvas.textContent = description;
  ui.canvas.dataset.frames = String(Number(ui.canvas.dataset.frames ?? 0) + 1);
}

/** The grid the controls ask for: its latents, labels and a sentence saying what it shows. */
function request(gen) {
  const seed = readSeed();
  const side = Number(ui.size.value);
  const n = side * side;
  const drawn = ganlite.draw(seed, 0, n, gen.latentDim, gen.numClasses);
  const chosen = ui.label.value;
  const labels = chosen === "" ? drawn.labels : new Int32Array(n).fill(Number(chosen));
  const kind = gen.card.dataset === "mnist" ? "digit" : "class";
  const what = chosen === "" ? (gen.conditional ? `random ${kind}s` : "images")
    : `${kind} ${gen.classNames[Number(chosen)]}`;
  return { seed, n, columns: side, z: drawn.z, labels, what };
}

function describe(state) {
  return `${state.columns} by ${state.columns} grid of generated images (${state.what}) ` +
         `from model ${state.gen.name}, seed ${state.seed}`;
}

async function draw() {
  stopWalk();
  const token = ++drawToken;
  const name = ui.model.value;
  clearError();
  setState("loading");
  ui.status.textContent = `Loading ${name}...`;
  ui.draw.disabled = ui.walk.disabled = true;
  try {
    const gen = await generator(name);
    if (token !== drawToken) return;
    const wanted = request(gen);
    const started = performance.now();
    const images = await gen.decode(wanted.z, wanted.labels);
    if (token !== drawToken) return;
    shown = { gen, ...wanted, leg: 0 };
    render(images, wanted.n, wanted.columns, describe(shown));
    ui.status.textContent = `${wanted.n} images of ${wanted.what}, seed ${wanted.seed}, in ` +
                            `${Math.round(performance.now() - started)} ms`;
    ui.draw.disabled = ui.walk.disabled = ui.download.disabled = false;
    const params = new URLSearchParams({ model: name, seed: String(wanted.seed),
                                         size: String(wanted.columns) });
    if (ui.label.value !== "") params.set("label", ui.label.value);
    history.replaceState(null, "", `?${params}`);
    setState("ready");
  } catch (e) {
    if (token !== drawToken) return;
    ui.status.textContent = "";
    ui.draw.disabled = false; // try again, e.g. after fixing the seed
    ui.walk.disabled = ui.download.disabled = shown === null;
    showError(e instanceof ganlite.UsageError ? e.message
      : `Could not load or run model ${name}: ${e.message}`);
  }
}

/** Spherical interpolation between latents a and b (row by row), as `ganlite interpolate`. */
function slerp(a, b, t, width) {
  const out = new Float32Array(a.length);
  for (let row = 0; row < a.length; row += width) {
    let dot = 0, na = 0, nb = 0;
    for (let j = row; j < row + width; j++) { dot += a[j] * b[j]; na += a[j] * a[j]; nb += b[j] * b[j]; }
    const omega = Math.acos(Math.min(1, Math.max(-1, dot / Math.sqrt(na * nb))));
    const s = Math.sin(omega);
    const [wa, wb] = s < 1e-6 ? [1 - t, t] : [Math.sin((1 - t) * omega) / s, Math.sin(t * omega) / s];
    for (let j = row; j < row + width; j++) out[j] = wa * a[j] + wb * b[j];
  }
  return out;
}

/** Walk each cell's latent to the next images of the same seed, leg after leg, until stopped. */
async function walk(id) {
  const state = shown;
  const { gen, n, seed } = state;
  setState("walking");
  while (walking === id) {
    // Leg k walks towards images n*k .. n*k + n - 1 of the seed: the same walk every time.
    const target = ganlite.draw(seed, n * (state.leg + 1), n, gen.latentDim, gen.numClasses).z;
    const from = state.z;
    for (let frame = 1; frame <= WALK_FRAMES && walking === id; frame++) {
      const z = slerp(from, target, frame / WALK_FRAMES, gen.latentDim);
      const images = await gen.decode(z, state.labels);
      if (walking !== id || shown !== state) return;
      state.z = z;
      render(images, n, state.columns, `${describe(state)}, walking through the latent space`);
      await new Promise(requestAnimationFrame);
    }
    if (walking === id) state.leg += 1;
  }
}

function startWalk() {
  if (walking || !shown) return;
  walking = ++walks;
  ui.walk.setAttribute("aria-pressed", "true");
  ui.walk.textContent = "Stop walk";
  ui.status.textContent = "Walking (Escape stops)";
  walk(walking).catch((e) => { stopWalk(); showError(`The walk stopped: ${e.message}`); });
}

function stopWalk() {
  if (!walking) return;
  walking = 0;
  ui.walk.setAttribute("aria-pressed", "false");
  ui.walk.textContent = "Play walk";
  ui.status.textContent = "Walk stopped";
  setState("ready");
}

function download() {
  if (!shown) return;
  const name = `${shown.gen.name}-seed${shown.seed}` +
               `${ui.label.value === "" ? "" : `-class${ui.label.value}`}.png`;
  ui.canvas.toBlob((blob) => {
    if (!blob) { showError("The browser could not encode the grid as PNG"); return; }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    ui.status.textContent = `Saved ${name} (${blob.size} bytes)`;
  }, "image/png");
}

async function start() {
  const params = new URLSearchParams(location.search);
  setState("loading");
  try {
    const response = await fetch(new URL("v1/models", document.baseURI));
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    cards = (await response.json()).models.filter((card) => card.kind === "generator");
    if (!cards.length) throw new Error("the server lists no generator");
  } catch (e) {
    showError(`Could not list the models (v1/models): ${e.message}`);
    return;
  }
  ui.model.replaceChildren(...cards.map((card) => new Option(card.name, card.name)));
  const first = cardOf(params.get("model")) ?? cardOf("mnist-cdcgan") ?? cards[0];
  ui.model.value = first.name;
  ui.model.disabled = false;
  fillLabels(first, params.get("label"));
  if (params.has("seed")) ui.seed.value = params.get("seed");
  if ([...ui.size.options].some((o) => o.value === params.get("size"))) ui.size.value = params.get("size");
  if (params.has("model") && params.get("model") !== first.name) {
    showError(`Unknown model "${params.get("model")}"; choose from ` +
              `${cards.map((c) => c.name).join(", ")}`);
    return;
  }
  await draw();
}

ui.form.addEventListener("submit", (event) => { event.preventDefault(); draw(); });
ui.model.addEventListener("change", () => { fillLabels(cardOf(ui.model.value), null); draw(); });
for (const control of [ui.label, ui.size, ui.seed]) control.addEventListener("change", () => draw());
ui.walk.addEventListener("click", () => (walking ? stopWalk() : startWalk()));
ui.download.addEventListener("click", download);
document.addEventListener("keydown", (event) => { if (event.key === "Escape") stopWalk(); });
start();
