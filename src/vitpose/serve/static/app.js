// The page of `vitpose serve`: send a photo to POST v1/pose and draw every person's skeleton over it.
//
// Plain JavaScript, no build step, no library, nothing loaded from anywhere but this service (it works offline).
// URLs are relative to the page, so the service also works behind a reverse proxy under a path prefix.
//
// What tests (and scripts) can read from the DOM:
//   document.body.dataset.state  "idle" | "loading" | "drawn" | "error"
//   window.vitposeLast           the last pose answer (JSON) of the image shown; window.vitposeModel: GET v1/model
//   the canvas                   the image at its natural size (answer.image_size): canvas pixel (x, y) is image
//                                pixel (x, y); CSS scales it to fit. Its data-radius, data-line-width,
//                                data-keypoints-drawn and data-draws (a count of redraws) describe the last drawing.
// Coordinates follow the package's convention (vitpose.visualization, OpenCV): (x, y) is the centre of pixel
// (x, y), which on a canvas is the point (x + 0.5, y + 0.5).
"use strict";

(() => {
  const FALLBACK_COLOR = [255, 128, 0]; // a layout without colours of its own (as vitpose.visualization)
  const BOX_COLOR = [0, 255, 0]; // vitpose.visualization's default box colour

  const byId = (id) => document.getElementById(id);
  const el = {
    body: document.body,
    modelInfo: byId("model-info"),
    dropZone: byId("drop-zone"),
    fileInput: byId("file-input"),
    cameraButton: byId("camera-button"),
    cameraPanel: byId("camera-panel"),
    video: byId("camera-video"),
    snapshotButton: byId("snapshot-button"),
    cameraClose: byId("camera-close"),
    keyForm: byId("key-form"),
    keyInput: byId("api-key"),
    datasetField: byId("dataset-field"),
    datasetSelect: byId("dataset-select"),
    threshold: byId("threshold"),
    thresholdValue: byId("threshold-value"),
    download: byId("download-button"),
    status: byId("status"),
    error: byId("error"),
    peopleCount: byId("people-count"),
    peopleList: byId("people-list"),
    stage: byId("stage"),
    canvas: byId("canvas"),
    tooltip: byId("tooltip"),
    placeholder: byId("placeholder"),
  };
  const ctx = el.canvas.getContext("2d");

  const state = {
    model: null, // the GET v1/model answer
    modelLoading: null, // its request in flight (a promise of true / false)
    apiKey: null, // kept in memory only: never stored
    image: null, // {blob, name} of the photo shown
    bitmap: null, // its decoded pixels (null while decoding, or when the browser cannot decode it)
    decoding: null, // a promise of the bitmap (or null)
    answer: null, // the pose answer for the photo shown
    seq: 0, // the number of the latest pose request: older answers are dropped
    controller: null, // aborts the request in flight when a newer one starts
    hits: [], // the keypoints drawn, for the tooltip: {x, y, person, index, name, score}
    radius: 3,
    draws: 0,
    stream: null, // the camera's MediaStream while it is open
  };

  // ------------------------------------------------------------------------------------------------ messages
  class HttpError extends Error {
    constructor(status, statusText, reason) {
      super(reason);
      this.status = status;
      this.statusText = statusText;
      this.reason = reason;
    }
  }

  class NetworkError extends Error {}

  function setState(name) {
    el.body.dataset.state = name;
  }

  function say(text) {
    el.status.textContent = text;
  }

  function showError(text) {
    el.error.textContent = text;
    el.error.hidden = false;
  }

  function clearError() {
    el.error.textContent = "";
    el.error.hidden = true;
    delete el.body.dataset.errorStatus;
  }

  function fail(err, what) {
    let text;
    if (err instanceof HttpError) {
      el.body.dataset.errorStatus = String(err.status);
      const answered = `the service answered ${err.status}${err.statusText ? " " + err.statusText : ""}`;
      if (err.status === 401) {
        el.keyForm.hidden = false;
        text = `${what}: ${answered}: ${err.reason}. Enter the service's API key below.`;
        el.keyInput.focus();
      } else {
        text = `${what}: ${answered}: ${err.reason}`;
        if (err.status === 503) text += " (the service is busy: try again in a moment)";
      }
    } else if (err instanceof NetworkError) {
      text = `${what}: could not reach the service (${err.message}). Is vitpose serve still running?`;
    } else {
      text = `${what}: ${err && err.message ? err.message : String(err)}`;
    }
    showError(text);
    say("Failed: see the message below.");
    setState("error");
  }

  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

  function formatBytes(n) {
    if (n < 1024) return `${n} bytes`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  // ------------------------------------------------------------------------------------------------ requests
  async function call(url, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (state.apiKey) headers["X-API-Key"] = state.apiKey;
    let response;
    let text;
    try {
      response = await fetch(url, Object.assign({}, options, { headers }));
      text = await response.text();
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new NetworkError(err && err.message ? err.message : String(err));
    }
    let body = null;
    try {
      body = JSON.parse(text);
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const reason =
        body && typeof body.error === "string" ? body.error : text.trim().slice(0, 300) || "no reason given";
      throw new HttpError(response.status, response.statusText, reason);
    }
    if (body === null || typeof body !== "object") {
      throw new Error(`the service answered ${response.status} with something other than JSON`);
    }
    return body;
  }

  function loadModel() {
    if (!state.modelLoading) {
      state.modelLoading = call("v1/model")
        .then((model) => {
          state.model = model;
          window.vitposeModel = model;
          showModel();
          return true;
        })
        .catch((err) => {
          if (!state.model) el.modelInfo.textContent = "The model's description could not be read.";
          fail(err, "Reading the model's description (GET /v1/model)");
          return false;
        })
        .finally(() => {
          state.modelLoading = null;
        });
    }
    return state.modelLoading;
  }

  function showModel() {
    const m = state.model;
    const layouts = m.layouts || {};
    const names = (m.datasets || [m.dataset]).map((d) => (layouts[d] && layouts[d].display_name) || d);
    const parts = [`Model ${m.model}`, names.join(", ")];
    if (Array.isArray(m.input_size)) parts.push(`input ${m.input_size[0]}×${m.input_size[1]}`);
    if (m.device) parts.push(m.device);
    if (m.flip_test) parts.push("flip test");
    el.modelInfo.textContent = parts.join(" · ");

    const datasets = Array.isArray(m.datasets) ? m.datasets : [];
    const chosen = el.datasetSelect.value;
    el.datasetSelect.replaceChildren(
      ...datasets.map((name) => {
        const option = document.createElement("option");
        option.value = name;
        const display = layouts[name] && layouts[name].display_name;
        option.textContent = display && display !== name ? `${display} (${name})` : name;
        return option;
      }),
    );
    el.datasetSelect.value = datasets.includes(chosen) ? chosen : m.dataset;
    el.datasetField.hidden = datasets.length < 2;
  }

  function chosenDataset() {
    return el.datasetField.hidden ? null : el.datasetSelect.value || null;
  }

  // --------------------------------------------------------------------------------------------- the photo
  function decode(blob) {
    if (typeof createImageBitmap === "function") {
      return createImageBitmap(blob).catch(() => null);
    }
    return new Promise((resolve) => {
      const url = URL.createObjectURL(blob);
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => resolve(null);
      image.src = url;
    });
  }

  function analyse(blob, name) {
    if (!blob) return;
    state.image = { blob, name: name || "image" };
    state.answer = null;
    window.vitposeLast = null;
    state.bitmap = null;
    state.hits = [];
    el.tooltip.hidden = true;
    el.download.disabled = true;
    el.canvas.width = 0; // the previous photo and its poses go at once
    el.canvas.height = 0;
    el.placeholder.hidden = false;
    el.peopleCount.textContent = "No people yet";
    el.peopleList.replaceChildren();
    const image = state.image;
    state.decoding = decode(blob).then((bitmap) => {
      if (state.image !== image) return bitmap;
      state.bitmap = bitmap;
      if (bitmap && !state.answer) draw(); // the photo at once, the poses when they come
      return bitmap;
    });
    send();
  }

  async function send() {
    const image = state.image;
    if (!image) return;
    const seq = ++state.seq;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    clearError();
    setState("loading");
    say(`Sending ${image.name} (${formatBytes(image.blob.size)})…`);
    if (state.modelLoading) await state.modelLoading; // the data-set picker is known before the request
    const form = new FormData();
    form.append("image", image.blob, image.name);
    const dataset = chosenDataset();
    if (dataset) form.append("dataset", dataset);
    let answer;
    try {
      answer = await call("v1/pose", { method: "POST", body: form, signal: controller.signal });
    } catch (err) {
      if (seq !== state.seq || (err && err.name === "AbortError")) return;
      fail(err, `Finding the poses in ${image.name}`);
      return;
    }
    if (!state.model) await loadModel(); // the layouts (a first load may have failed, e.g. before the key)
    const bitmap = await state.decoding;
    if (seq !== state.seq) return;
    state.controller = null;
    state.answer = answer;
    window.vitposeLast = answer;
    el.download.disabled = false;
    draw();
    setState("drawn");
    if (!bitmap) {
      showError(
        `The service read ${image.name}, but this browser cannot display it: the poses are drawn on a grey ` +
          "background.",
      );
    }
  }

  // ------------------------------------------------------------------------------------------------ drawing
  function threshold() {
    const value = Number(el.threshold.value);
    return Number.isFinite(value) ? value : 0;
  }

  const css = (rgb) => `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;

  function layoutOf(answer, count) {
    const layouts = (state.model && state.model.layouts) || {};
    const layout = layouts[answer.dataset];
    const names = answer.keypoint_names || (layout && layout.keypoint_names) || [];
    if (!layout || layout.keypoint_names.length !== count) {
      return { names, skeleton: [], keypointColors: [], linkColors: [] };
    }
    return {
      names,
      skeleton: layout.skeleton || [],
      keypointColors: layout.keypoint_colors || [],
      linkColors: layout.link_colors || [],
    };
  }

  function draw() {
    const answer = state.answer;
    const bitmap = state.bitmap;
    if (!answer && !bitmap) return;
    const [width, height] = answer ? answer.image_size : [bitmap.width, bitmap.height];
    if (el.canvas.width !== width) el.canvas.width = width;
    if (el.canvas.height !== height) el.canvas.height = height;
    el.placeholder.hidden = true;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalAlpha = 1;
    if (bitmap) {
      ctx.drawImage(bitmap, 0, 0, width, height);
    } else {
      ctx.fillStyle = "rgb(128, 128, 128)";
      ctx.fillRect(0, 0, width, height);
    }
    state.hits = [];
    if (!answer) {
      el.canvas.setAttribute("aria-label", `${state.image ? state.image.name : "The photo"}, waiting for the poses`);
      return;
    }

    const people = answer.people || [];
    const count = people.length ? people[0].keypoints.length : 0;
    const layout = layoutOf(answer, count);
    const thr = threshold();
    const longest = Math.max(width, height);
    const radius = Math.max(3, Math.round(longest / 160)); // vitpose.visualization's sizes, never thinner
    const lineWidth = Math.max(2, Math.round(longest / 320));
    state.radius = radius;
    const shown = (person, j) => {
      const point = person.keypoints[j];
      const score = person.keypoint_scores ? person.keypoint_scores[j] : Infinity;
      return point && Number.isFinite(point[0]) && Number.isFinite(point[1]) && score > thr;
    };

    ctx.translate(0.5, 0.5); // pixel centres (see the top of this file)
    ctx.lineWidth = lineWidth;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = css(BOX_COLOR);
    for (const person of people) {
      const [x, y, w, h] = person.bbox;
      if ([x, y, w, h].every(Number.isFinite)) ctx.strokeRect(x, y, w, h);
    }
    for (const person of people) {
      layout.skeleton.forEach(([a, b], i) => {
        if (!shown(person, a) || !shown(person, b)) return;
        ctx.strokeStyle = css(layout.linkColors[i] || FALLBACK_COLOR);
        ctx.beginPath();
        ctx.moveTo(person.keypoints[a][0], person.keypoints[a][1]);
        ctx.lineTo(person.keypoints[b][0], person.keypoints[b][1]);
        ctx.stroke();
      });
    }
    let drawn = 0;
    people.forEach((person, p) => {
      person.keypoints.forEach((point, j) => {
        if (!shown(person, j)) return;
        ctx.fillStyle = css(layout.keypointColors[j] || FALLBACK_COLOR);
        ctx.beginPath();
        ctx.arc(point[0], point[1], radius, 0, 2 * Math.PI);
        ctx.fill();
        drawn += 1;
        const score = person.keypoint_scores ? person.keypoint_scores[j] : NaN;
        state.hits.push({ x: point[0], y: point[1], person: p, index: j, name: layout.names[j] || `#${j}`, score });
      });
    });
    ctx.setTransform(1, 0, 0, 1, 0, 0);

    state.draws += 1;
    Object.assign(el.canvas.dataset, {
      radius: String(radius),
      lineWidth: String(lineWidth),
      keypointsDrawn: String(drawn),
      draws: String(state.draws),
    });
    const found = plural(people.length, "person", "people");
    el.canvas.setAttribute("aria-label", `${state.image ? state.image.name : "The photo"} with ${found} drawn`);
    el.peopleCount.textContent = people.length ? `${found} found` : "No people found";
    listPeople(people, layout, shown);
    const total = answer.timings && answer.timings.total_ms;
    say(
      `${state.image ? state.image.name : "The photo"}: ${found}, ${plural(drawn, "keypoint", "keypoints")} ` +
        `above ${thr.toFixed(2)} (data set ${answer.dataset})` +
        (Number.isFinite(total) ? `, ${Math.round(total)} ms on the service.` : "."),
    );
  }

  function listPeople(people, layout, shown) {
    const items = people.map((person, p) => {
      const item = document.createElement("li");
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      const visible = person.keypoints.filter((_, j) => shown(person, j)).length;
      summary.textContent =
        `Person ${p + 1}: score ${Number(person.score).toFixed(3)}, box ${Number(person.box_score).toFixed(3)}, ` +
        `${visible} of ${person.keypoints.length} keypoints shown`;
      const list = document.createElement("ul");
      person.keypoints.forEach((_, j) => {
        const row = document.createElement("li");
        const score = person.keypoint_scores ? person.keypoint_scores[j] : NaN;
        row.textContent = `${layout.names[j] || "#" + j}: ${Number(score).toFixed(3)}`;
        if (!shown(person, j)) row.className = "below";
        list.append(row);
      });
      details.append(summary, list);
      item.append(details);
      return item;
    });
    el.peopleList.replaceChildren(...items);
  }

  // ------------------------------------------------------------------------------------------------ tooltip
  function hover(event) {
    const rect = el.canvas.getBoundingClientRect();
    if (!state.hits.length || !rect.width || !rect.height) {
      el.tooltip.hidden = true;
      return;
    }
    const sx = el.canvas.width / rect.width;
    const sy = el.canvas.height / rect.height;
    const x = (event.clientX - rect.left) * sx - 0.5;
    const y = (event.clientY - rect.top) * sy - 0.5;
    const reach = Math.max(state.radius + 2, 8 * sx);
    let best = null;
    let bestDistance = reach * reach;
    for (const hit of state.hits) {
      const d = (hit.x - x) ** 2 + (hit.y - y) ** 2;
      if (d <= bestDistance) {
        best = hit;
        bestDistance = d;
      }
    }
    if (!best) {
      el.tooltip.hidden = true;
      el.canvas.style.cursor = "";
      return;
    }
    const people = state.answer.people.length;
    el.tooltip.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = best.name;
    const detail = document.createElement("span");
    detail.textContent = `score ${Number(best.score).toFixed(3)} · person ${best.person + 1} of ${people}`;
    el.tooltip.append(title, document.createElement("br"), detail);
    Object.assign(el.tooltip.dataset, { person: String(best.person), keypoint: String(best.index) });
    // Beside the point, below and to the right unless that runs out of the stage.
    const stageRect = el.stage.getBoundingClientRect();
    const px = rect.left - stageRect.left + (best.x + 0.5) / sx;
    const py = rect.top - stageRect.top + (best.y + 0.5) / sy;
    el.tooltip.hidden = false;
    const { offsetWidth: tw, offsetHeight: th } = el.tooltip;
    const left = px + 12 + tw <= el.stage.clientWidth ? px + 12 : Math.max(0, px - 12 - tw);
    const top = py + 12 + th <= el.stage.clientHeight ? py + 12 : Math.max(0, py - 12 - th);
    el.tooltip.style.left = `${left}px`;
    el.tooltip.style.top = `${top}px`;
    el.canvas.style.cursor = "crosshair";
  }

  el.canvas.addEventListener("mousemove", hover);
  el.canvas.addEventListener("mouseleave", () => {
    el.tooltip.hidden = true;
  });

  // ------------------------------------------------------------------------------------------------ inputs
  el.fileInput.addEventListener("change", () => {
    const file = el.fileInput.files && el.fileInput.files[0];
    el.fileInput.value = ""; // choosing the same file again sends it again
    if (file) analyse(file, file.name);
  });

  const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  for (const type of ["dragenter", "dragover"]) {
    document.addEventListener(type, (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      el.body.classList.add("dragging");
    });
  }
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) el.body.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    el.body.classList.remove("dragging");
    const files = event.dataTransfer ? Array.from(event.dataTransfer.files || []) : [];
    if (!files.length) return;
    event.preventDefault();
    const file = files.find((f) => f.type.startsWith("image/")) || files[0];
    analyse(file, file.name);
  });

  document.addEventListener("paste", (event) => {
    const data = event.clipboardData;
    if (!data) return;
    const files = Array.from(data.files || []);
    for (const item of Array.from(data.items || [])) {
      if (item.kind === "file" && !files.length) {
        const file = item.getAsFile();
        if (file) files.push(file);
      }
    }
    const file = files.find((f) => f.type.startsWith("image/"));
    if (!file) {
      const target = event.target;
      const typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA");
      if (!typing) say("The clipboard holds no image to paste.");
      return;
    }
    event.preventDefault();
    analyse(file, file.name && file.name !== "image.png" ? file.name : "pasted image");
  });

  el.threshold.addEventListener("input", () => {
    el.thresholdValue.textContent = threshold().toFixed(2);
    if (state.answer) draw(); // the last answer again: no new request
  });

  el.datasetSelect.addEventListener("change", () => {
    if (state.image) send();
  });

  el.download.addEventListener("click", () => {
    if (!state.answer) return;
    const text = JSON.stringify(state.answer, null, 2) + "\n";
    const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    const link = document.createElement("a");
    const stem = (state.image ? state.image.name : "image").replace(/\.[^./\\]*$/, "") || "image";
    link.href = url;
    link.download = `${stem}.pose.json`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  });

  el.keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    state.apiKey = el.keyInput.value.trim() || null;
    clearError();
    setState("loading");
    say("Trying the key…");
    if (!(await loadModel())) return;
    el.keyForm.hidden = true;
    if (state.image) {
      send();
    } else {
      setState("idle");
      say("Key accepted. Choose a photo to start.");
    }
  });

  // ------------------------------------------------------------------------------------------------ camera
  const canFilm = Boolean(navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === "function");
  el.cameraButton.hidden = !canFilm;

  function closeCamera() {
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
    el.video.srcObject = null;
    el.cameraPanel.hidden = true;
    el.cameraButton.hidden = !canFilm;
  }

  el.cameraButton.addEventListener("click", async () => {
    clearError();
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (err) {
      showError(`The camera could not be opened: ${err && err.message ? err.message : err && err.name}`);
      return;
    }
    el.video.srcObject = state.stream;
    el.cameraPanel.hidden = false;
    el.cameraButton.hidden = true;
    say("Camera open: take a photo when ready.");
  });

  el.snapshotButton.addEventListener("click", () => {
    const { videoWidth: width, videoHeight: height } = el.video;
    if (!width || !height) {
      say("The camera is not ready yet.");
      return;
    }
    const shot = document.createElement("canvas");
    shot.width = width;
    shot.height = height;
    shot.getContext("2d").drawImage(el.video, 0, 0, width, height);
    shot.toBlob((blob) => analyse(blob, "camera.jpg"), "image/jpeg", 0.92);
  });

  el.cameraClose.addEventListener("click", closeCamera);

  // ------------------------------------------------------------------------------------------------ start
  el.thresholdValue.textContent = threshold().toFixed(2);
  setState("idle");
  loadModel();
})();
