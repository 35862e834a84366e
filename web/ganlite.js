// @ts-check
// ganlite in the browser: load a ganlite generator (.onnx) and make images with
// onnxruntime-web's WebAssembly backend. No framework, no bundler, no CDN: onnxruntime-web
// and its .wasm are loaded from ./node_modules/onnxruntime-web/dist/ beside this file
// (`npm ci` in web/ puts them there), so a page using it works offline.
//
//   import * as ganlite from "./ganlite.js";
//   const gen = await ganlite.load("/models/mnist-cdcgan.onnx");
//   const pixels = await gen.generate(16, { seed: 1, labels: 7 });  // Uint8Array, 16 * 784
//
// The model card (input names, latent size, class names) is read from the model file
// itself (the "ganlite.card" entry of the ONNX metadata, as the Python runtime does), and
// the file's seal (the card's model_sha256) is checked before onnxruntime sees it.
//
// Latents: a browser cannot draw numpy's PCG64 normals cheaply, so `draw()` has its own
// documented generator (see draw() below). Same seed -> same images holds within one
// browser engine; the same latents given to decode() match Python's decode() within one
// gray level (float rounding of WebAssembly SIMD against native code).

import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";

/** Where onnxruntime-web's .wasm and its loader (.mjs) live: beside this module. */
const ORT_DIST = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
if (!ort.env.wasm.wasmPaths) ort.env.wasm.wasmPaths = ORT_DIST;
// Several wasm threads need SharedArrayBuffer, which browsers give only to cross-origin
// isolated pages (COOP + COEP headers). Without it onnxruntime would warn and fall back to
// one thread anyway, so ask for one thread unless the page is isolated.
if (!ort.env.wasm.numThreads) {
  ort.env.wasm.numThreads = globalThis.crossOriginIsolated
    ? Math.min(4, globalThis.navigator?.hardwareConcurrency || 1) : 1;
}

export const CARD_KEY = "ganlite.card";
export const HASH_KEY = "model_sha256";
/** Images per onnxruntime call: bounds the wasm heap (about 180 KB of activations each). */
export const CHUNK = 256;
/** Most images one generate() or decode() call returns (78 MB of pixels). */
export const MAX_IMAGES = 100000;
const PIXELS = 28 * 28;
const METADATA_FIELD = 14; // ModelProto.metadata_props: StringStringEntryProto {key 1, value 2}

/** Any error of this module; the message names the bad value and the valid choices. */
export class GanliteError extends Error {
  constructor(message) { super(message); this.name = this.constructor.name; }
}
/** A bad argument (shape, range, class name). */
export class UsageError extends GanliteError {}
/** The file is not a usable ganlite generator, or it could not be fetched. */
export class ModelError extends GanliteError {}
/** The file's bytes are not the ones that were sealed at export (model_sha256). */
export class IntegrityError extends ModelError {}

// ---------------------------------------------------------------------------------------
// The card, from the ONNX file's bytes (a protobuf walk of the top-level fields only).

function varint(buf, pos) {
  let result = 0, scale = 1;
  for (;;) {
    if (pos >= buf.length) throw new ModelError("truncated varint");
    const b = buf[pos++];
    result += (b & 0x7f) * scale;     // arithmetic, not <<: lengths may pass 2^31
    if (!(b & 0x80)) return [result, pos];
    scale *= 128;
    if (scale > 2 ** 56) throw new ModelError("varint too long");
  }
}

/** Yields [number, wire, start, end, valueStart] for each field of one message. */
function* spans(buf) {
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    let key, length;
    [key, pos] = varint(buf, pos);
    const number = Math.floor(key / 8), wire = key % 8;
    let valueStart = pos;
    if (wire === 0) [, pos] = varint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      [length, valueStart] = varint(buf, pos);
      pos = valueStart + length;
    } else throw new ModelError(`unsupported protobuf wire type ${wire}`);
    if (pos > buf.length) throw new ModelError("truncated field");
    yield [number, wire, start, pos, valueStart];
  }
}

function encodeVarint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** One length-delimited field in its shortest encoding (as ganlite/_onnxfile.py writes). */
function encodeField(number, value) {
  return concat(encodeVarint(number * 8 + 2), encodeVarint(value.length), value);
}

/**
 * The card stored in a model file, and where its metadata field lies.
 * @param {Uint8Array} bytes the whole .onnx file
 * @returns {{card: object, text: Uint8Array, start: number, end: number}}
 * @throws {ModelError} not ONNX, no card or several, card not a JSON object
 */
export function findCard(bytes) {
  const found = [];
  for (const [number, wire, start, end, valueStart] of spans(bytes)) {
    if (number !== METADATA_FIELD || wire !== 2) continue;
    const entry = {};
    for (const [n, w, , e, vs] of spans(bytes.subarray(valueStart, end))) {
      if (w === 2) entry[n] = bytes.subarray(valueStart + vs, valueStart + e);
    }
    if (entry[1] && new TextDecoder().decode(entry[1]) === CARD_KEY) {
      found.push({ text: entry[2] ?? new Uint8Array(), start, end });
    }
  }
  if (found.length > 1) throw new ModelError(`${found.length} model cards in one file`);
  if (!found.length) {
    throw new ModelError("no ganlite model card: not a model exported by `python -m export`");
  }
  let card;
  try {
    card = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(found[0].text));
  } catch {
    throw new ModelError("its model card is not valid JSON");
  }
  if (!card || typeof card !== "object" || Array.isArray(card)) {
    throw new ModelError("its model card is not a JSON object");
  }
  return { card, ...found[0] };
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Check the seal: SHA-256 of the file with the card's metadata field re-encoded without
 * model_sha256 must equal the card's model_sha256 (the rule of ganlite/_card.py). A sealed
 * file holds its card as canonical JSON (sorted keys, no spaces, ASCII), so the unsealed
 * JSON is the stored text less its one `"model_sha256":"..."` member.
 * @param {Uint8Array} bytes
 * @returns {Promise<object>} the card
 * @throws {IntegrityError} any byte differs from what was sealed, or the file is unsealed
 */
export async function checkSeal(bytes) {
  const { card, text, start, end } = findCard(bytes);
  const sealed = card[HASH_KEY];
  if (typeof sealed !== "string" || !/^[0-9a-f]{64}$/.test(sealed)) {
    throw new IntegrityError(`its card has no valid ${HASH_KEY}: the model was not sealed ` +
                             "by `python -m export`, or was modified after export");
  }
  const stored = new TextDecoder().decode(text);
  const member = `"${HASH_KEY}":"${sealed}"`;
  if (text.some((b) => b > 0x7f) || stored.split(member).length !== 2) {
    throw new IntegrityError("its model card is not stored as sealed: the model was " +
                             "modified after export");
  }
  const unsealed = stored.includes(member + ",")
    ? stored.replace(member + ",", "") : stored.replace("," + member, "");
  const entry = concat(encodeField(1, new TextEncoder().encode(CARD_KEY)),
                       encodeField(2, new TextEncoder().encode(stored)));
  const field = encodeField(METADATA_FIELD, entry);
  if (field.length !== end - start || field.some((b, i) => b !== bytes[start + i])) {
    throw new IntegrityError("its model card is not stored as sealed: the model was " +
                             "modified after export");
  }
  if (!globalThis.crypto?.subtle) {
    throw new IntegrityError("cannot check the model's seal: crypto.subtle needs a secure " +
                             "context (https, or http on localhost / 127.0.0.1); pass " +
                             "{verify: false} to load() to skip the check");
  }
  const unsealedField = encodeField(METADATA_FIELD, concat(
    encodeField(1, new TextEncoder().encode(CARD_KEY)),
    encodeField(2, new TextEncoder().encode(unsealed))));
  const digest = hex(await crypto.subtle.digest("SHA-256", concat(
    bytes.subarray(0, start), unsealedField, bytes.subarray(end))));
  if (digest !== sealed) {
    throw new IntegrityError("its bytes differ from the sealed ones (model_sha256): the " +
                             "model was modified after export");
  }
  return card;
}

// ---------------------------------------------------------------------------------------
// Latents: a seeded generator of our own (numpy's PCG64 normals are not reproduced).

function fmix32(h) { // MurmurHash3's finalizer: a bijection on 32 bits that mixes well
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** sfc32 (Chris Doty-Humphrey's PractRand "small fast counting" generator), 32-bit out. */
function sfc32(a, b, c, d) {
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
}

/** The generator of image `index` of a run with `seed`. */
function stream(seed, index) {
  const lo = (x) => x % 2 ** 32, hi = (x) => Math.floor(x / 2 ** 32);
  const a = fmix32(lo(seed) ^ 0x9e3779b9), b = fmix32(hi(seed) ^ 0x243f6a88 ^ a);
  const c = fmix32(lo(index) ^ 0xb7e15162 ^ b), d = fmix32(hi(index) ^ 0x85a308d3 ^ c);
  const next = sfc32(a, b, c, d);
  for (let i = 0; i < 12; i++) next(); // let the seed spread through the state
  // Uniform in (0, 1), never 0 nor 1: 52 random bits, centered in their interval (exact in
  // float64, so the largest value is 1 - 2^-53, never rounded up to 1).
  return () => ((next() >>> 6) * 67108864 + (next() >>> 6) + 0.5) / 4503599627370496;
}

function checkInt(name, value, low, high) {
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new UsageError(`${name} must be an integer between ${low} and ${high}, got ` +
                         `${typeof value === "string" ? JSON.stringify(value) : String(value)}`);
  }
  return value;
}

/**
 * Latents and labels of images start .. start + count - 1 of a run: image i's latent is a
 * pure function of (seed, i), as in Python's ganlite.latents.draw (though not the same
 * numbers). Image i's generator is sfc32 seeded with MurmurHash3-finalized words of the
 * seed and of i (12 outputs discarded); it draws latentDim N(0, 1) values by Box-Muller
 * (u1, u2 uniform in (0, 1) from 52 bits each: sqrt(-2 ln u1) cos(2 pi u2), then ... sin,
 * rounded to float32), then, for a conditional model, its label floor(u * numClasses).
 * @param {number} seed 0 .. 2^53 - 1
 * @param {number} start index of the first image, 0 .. 2^53 - 1
 * @param {number} count how many images, 1 .. MAX_IMAGES
 * @param {number} latentDim width of a latent
 * @param {number} [numClasses=0] 0: no labels (unconditional model)
 * @returns {{z: Float32Array, labels: Int32Array|null}} z holds count * latentDim values
 * @throws {UsageError} an argument out of its range
 */
export function draw(seed, start, count, latentDim, numClasses = 0) {
  checkInt("seed", seed, 0, Number.MAX_SAFE_INTEGER);
  checkInt("start", start, 0, Number.MAX_SAFE_INTEGER);
  checkInt("count", count, 1, MAX_IMAGES);
  checkInt("latentDim", latentDim, 1, 4096);
  checkInt("numClasses", numClasses, 0, 1000);
  const z = new Float32Array(count * latentDim);
  const labels = numClasses ? new Int32Array(count) : null;
  for (let i = 0; i < count; i++) {
    const uniform = stream(seed, start + i);
    for (let j = 0; j < latentDim; j += 2) {
      const r = Math.sqrt(-2 * Math.log(uniform())), angle = 2 * Math.PI * uniform();
      z[i * latentDim + j] = r * Math.cos(angle);
      if (j + 1 < latentDim) z[i * latentDim + j + 1] = r * Math.sin(angle);
    }
    if (labels) labels[i] = Math.floor(uniform() * numClasses);
  }
  return { z, labels };
}

// ---------------------------------------------------------------------------------------
// The generator.

/** Class names compare by this key: "Ankle boot", "ankle_boot", "ankle-boot" are one. */
function classKey(name) {
  return String(name).trim().toLowerCase().replaceAll("_", "-").replaceAll(" ", "-");
}

function checkCard(card) {
  const bad = (field, want) => {
    throw new ModelError(`its card's ${field} is ${JSON.stringify(card[field])}; expected ${want}`);
  };
  if (card.kind !== "generator") bad("kind", '"generator" (a classifier cannot generate)');
  if (!Number.isInteger(card.latent_dim) || card.latent_dim < 1 || card.latent_dim > 4096) {
    bad("latent_dim", "an integer 1 .. 4096");
  }
  if (typeof card.conditional !== "boolean") bad("conditional", "true or false");
  const names = card.input_names;
  if (!names || typeof names.z !== "string" || (card.conditional && typeof names.label !== "string")) {
    bad("input_names", '{"z": NAME} (and "label": NAME for a conditional model)');
  }
  if (card.conditional) {
    if (!Number.isInteger(card.num_classes) || card.num_classes < 1 || card.num_classes > 1000) {
      bad("num_classes", "an integer 1 .. 1000");
    }
    if (!Array.isArray(card.class_names) || card.class_names.length !== card.num_classes ||
        !card.class_names.every((c) => typeof c === "string")) {
      bad("class_names", `${card.num_classes} strings`);
    }
  }
  if (!card.outputs || typeof card.outputs !== "object" || !Object.keys(card.outputs).length) {
    bad("outputs", '{"image": {...}}');
  }
}

/**
 * A loaded generator. Its methods may be called concurrently: runs are queued, one at a
 * time on the session (onnxruntime-web runs one inference per session at once).
 */
export class Generator {
  /** @param {ort.InferenceSession} session @param {object} card */
  constructor(session, card) {
    /** The model card, as ganlite.read_card returns it in Python. */
    this.card = card;
    /** @type {string} */ this.name = card.name;
    /** @type {number} */ this.latentDim = card.latent_dim;
    /** @type {boolean} */ this.conditional = card.conditional;
    /** @type {number} */ this.numClasses = card.conditional ? card.num_classes : 0;
    /** @type {string[]} */ this.classNames = card.conditional ? [...card.class_names] : [];
    this._session = session;
    this._inputZ = card.input_names.z;
    this._inputLabel = card.conditional ? card.input_names.label : null;
    this._output = Object.keys(card.outputs)[0];
    this._queue = Promise.resolve();
  }

  /**
   * The class number of a class name ("Ankle boot", "ankle_boot", "ankle-boot": one class).
   * @param {string} name
   * @returns {number}
   * @throws {UsageError} unconditional model, or no such class (the message lists them)
   */
  classIndex(name) {
    if (!this.conditional) {
      throw new UsageError(`model "${this.name}" is unconditional: it has no classes`);
    }
    const index = this.classNames.map(classKey).indexOf(classKey(name));
    if (index < 0) {
      throw new UsageError(`class ${JSON.stringify(name)} is not a class of model ` +
                           `"${this.name}"; choose from ${this.classNames.join(", ")}`);
    }
    return index;
  }

  /** One class (number or name) -> its number, checked. */
  _label(value) {
    if (typeof value === "string") return this.classIndex(value);
    if (typeof value === "bigint") value = Number(value);
    return checkInt("label", value, 0, this.numClasses - 1);
  }

  /** labels as given -> BigInt64Array [n] (int64, the model's label input), checked. */
  _labels(labels, n) {
    if (!this.conditional) {
      if (labels !== undefined && labels !== null) {
        throw new UsageError(`model "${this.name}" is unconditional: it takes no labels`);
      }
      return null;
    }
    if (labels === undefined || labels === null) {
      throw new UsageError(`model "${this.name}" is conditional: give labels ` +
                           `(0 .. ${this.numClasses - 1} or a class name)`);
    }
    const out = new BigInt64Array(n);
    if (typeof labels === "number" || typeof labels === "string" || typeof labels === "bigint") {
      out.fill(BigInt(this._label(labels)));
      return out;
    }
    if (labels.length !== n) {
      throw new UsageError(`give one label per image: ${n} images, ${labels.length} labels`);
    }
    for (let i = 0; i < n; i++) out[i] = BigInt(this._label(labels[i]));
    return out;
  }

  /**
   * Images of explicit latents.
   * @param {Float32Array|number[]} z b * latentDim values (row-major [b, latentDim]), finite
   * @param {Int32Array|BigInt64Array|number[]|string[]|number|string} [labels] conditional
   *   models (required): one class for all, or one per latent (numbers or class names)
   * @returns {Promise<Uint8Array>} b * 784 bytes: b images of 28 x 28, row-major,
   *   0 = black, 255 = white
   * @throws {UsageError} z of the wrong length or not finite, labels missing or out of range
   * @throws {ModelError} the model returned something other than b uint8 28 x 28 images
   */
  async decode(z, labels) {
    if (!(z instanceof Float32Array)) {
      if (!z || typeof z.length !== "number") {
        throw new UsageError(`z must be a Float32Array of batch * ${this.latentDim} values`);
      }
      z = Float32Array.from(z);
    }
    const b = z.length / this.latentDim;
    if (!Number.isInteger(b) || b < 1 || b > MAX_IMAGES) {
      throw new UsageError(`z must hold batch * ${this.latentDim} values (batch 1 .. ` +
                           `${MAX_IMAGES}), got ${z.length}`);
    }
    if (!z.every(Number.isFinite)) throw new UsageError("z holds NaN or infinite values");
    const resolved = this._labels(labels, b);
    const run = this._queue.then(() => this._run(z, resolved, b));
    this._queue = run.then(() => {}, () => {}); // the next run waits, whatever this one did
    return run;
  }

  async _run(z, labels, b) {
    const images = new Uint8Array(b * PIXELS);
    for (let start = 0; start < b; start += CHUNK) {
      const count = Math.min(CHUNK, b - start);
      const feeds = {
        [this._inputZ]: new ort.Tensor("float32",
          z.subarray(start * this.latentDim, (start + count) * this.latentDim),
          [count, this.latentDim]),
      };
      if (this._inputLabel) {
        feeds[this._inputLabel] = new ort.Tensor("int64", labels.subarray(start, start + count),
                                                 [count]);
      }
      const result = await this._session.run(feeds, [this._output]);
      const out = result[this._output];
      const dims = out ? Array.from(out.dims) : [];
      if (!out || out.type !== "uint8" || dims.join() !== [count, 28, 28].join()) {
        throw new ModelError(`model "${this.name}" returned ${out ? out.type : "nothing"} ` +
                             `[${dims}] for ${count} latents; expected uint8 [${count}, 28, 28]`);
      }
      images.set(out.data, start * PIXELS);
      out.dispose?.();
    }
    return images;
  }

  /**
   * n images of a seeded run: image i is decode() of draw(seed, i, ...)'s latent, so the
   * first k images are the same whatever n is.
   * @param {number} n 1 .. MAX_IMAGES
   * @param {{seed?: number, labels?: Int32Array|number[]|string[]|number|string}} [options]
   *   seed 0 .. 2^53 - 1 (default 0); labels: as in decode(), or none: each image's class
   *   is drawn at random (uniform) from the seed
   * @returns {Promise<Uint8Array>} n * 784 bytes, as decode()
   * @throws {UsageError} bad n, seed or labels
   */
  async generate(n, { seed = 0, labels } = {}) {
    checkInt("n", n, 1, MAX_IMAGES);
    const drawn = draw(seed, 0, n, this.latentDim, this.numClasses);
    return this.decode(drawn.z, labels ?? drawn.labels ?? undefined);
  }

  /** Release the session's WebAssembly memory; the generator is unusable afterwards. */
  async dispose() {
    await this._queue;
    await this._session.release();
  }
}

/**
 * Load a ganlite generator from a URL.
 * @param {string|URL} modelUrl the .onnx file (e.g. "/models/mnist-cdcgan.onnx")
 * @param {{card?: object, verify?: boolean}} [options] card: use this card instead of the
 *   one in the file (e.g. fetched from /models/NAME.json); verify (default true): check
 *   the file's seal (needs crypto.subtle: https, or localhost)
 * @returns {Promise<Generator>}
 * @throws {ModelError} the URL cannot be fetched, or is not a ganlite generator
 * @throws {IntegrityError} the file was modified after export
 */
export async function load(modelUrl, { card, verify = true } = {}) {
  const url = new URL(modelUrl, globalThis.document?.baseURI ?? import.meta.url).href;
  const where = (e) => { e.message = `${url}: ${e.message}`; return e; };
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new ModelError(`${url}: cannot fetch the model (${e.message})`);
  }
  if (!response.ok) {
    throw new ModelError(`${url}: cannot fetch the model: HTTP ${response.status} ` +
                         `${response.statusText}`.trim());
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  try {
    const stored = verify ? await checkSeal(bytes) : findCard(bytes).card;
    card = card ?? stored;
    checkCard(card);
  } catch (e) {
    throw e instanceof GanliteError ? where(e) : e;
  }
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  } catch (e) {
    throw new ModelError(`${url}: onnxruntime-web cannot load it (${e.message ?? e})`);
  }
  const wanted = [card.input_names.z, ...(card.conditional ? [card.input_names.label] : [])];
  const missing = wanted.filter((name) => !session.inputNames.includes(name));
  if (missing.length || !session.outputNames.includes(Object.keys(card.outputs)[0])) {
    await session.release();
    throw new ModelError(`${url}: the graph's inputs [${session.inputNames}] and outputs ` +
                         `[${session.outputNames}] do not match its card`);
  }
  return new Generator(session, card);
}
