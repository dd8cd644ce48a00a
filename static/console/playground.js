// The playground: a chat kept in the page (images attached inline as data URLs), each turn streamed from the
// relay's session-authenticated route.
(function () {
  "use strict";
  var form = document.getElementById("playground");
  if (!form) { return; }
  var transcript = document.getElementById("pg-transcript");
  var messages = [];

  function cookie(name) {
    var found = document.cookie.split("; ").find(function (part) { return part.indexOf(name + "=") === 0; });
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function bubble(role, text, images) {
    var item = document.createElement("div");
    item.className = "turn turn-" + role;
    item.textContent = text;
    (images || []).forEach(function (url) {
      var img = document.createElement("img");
      img.src = url;
      img.alt = "";
      img.className = "turn-image";
      item.appendChild(img);
    });
    transcript.appendChild(item);
    return item;
  }

  var MAX_IMAGE_BYTES = 5 * 1024 * 1024;

  function readImages() {
    // The chosen files as data URLs (sent inline: the playground uploads nothing elsewhere).
    var files = Array.prototype.slice.call(form.elements.images.files || []);
    var tooBig = files.filter(function (file) { return file.size > MAX_IMAGE_BYTES; });
    if (tooBig.length) { return Promise.reject(new Error(form.getAttribute("data-too-big"))); }
    return Promise.all(files.map(function (file) {
      return new Promise(function (resolve, reject) {
        var reader = new FileReader();
        reader.onload = function () { resolve(reader.result); };
        reader.onerror = function () { reject(reader.error); };
        reader.readAsDataURL(file);
      });
    }));
  }

  function request() {
    var system = form.elements.system.value.trim();
    var body = {model: form.elements.model.value, stream: true,
                temperature: parseFloat(form.elements.temperature.value || "0.7"),
                messages: (system ? [{role: "system", content: system}] : []).concat(messages)};
    return fetch(form.getAttribute("data-url"), {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: {"content-type": "application/json", "x-csrftoken": cookie(form.getAttribute("data-csrf-cookie"))}
    });
  }

  async function send() {
    var text = form.elements.message.value.trim();
    if (!text) { return; }
    var images;
    try {
      images = await readImages();
    } catch (error) {
      bubble("assistant", form.getAttribute("data-error") + " " + error.message).classList.add("turn-error");
      return;
    }
    var content = images.length ? [{type: "text", text: text}].concat(images.map(function (url) {
      return {type: "image_url", image_url: {url: url}};
    })) : text;
    messages.push({role: "user", content: content});
    bubble("user", text, images);
    form.elements.message.value = "";
    form.elements.images.value = "";
    var answer = bubble("assistant", "");
    document.getElementById("pg-send").disabled = true;
    try {
      var response = await request();
      if (!response.ok) {
        var failure = await response.json().catch(function () { return {}; });
        throw new Error((failure.error && failure.error.message) || ("HTTP " + response.status));
      }
      var reader = response.body.getReader(), decoder = new TextDecoder(), pending = "", reply = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) { break; }
        pending += decoder.decode(chunk.value, {stream: true});
        var events = pending.split("\n\n");
        pending = events.pop();
        events.forEach(function (event) {
          var data = event.split("\n").filter(function (l) { return l.indexOf("data: ") === 0; })
            .map(function (l) { return l.slice(6); }).join("");
          if (!data || data === "[DONE]") { return; }
          var parsed = JSON.parse(data);
          var delta = parsed.choices && parsed.choices[0] && parsed.choices[0].delta;
          if (delta && delta.content) { reply += delta.content; answer.textContent = reply; }
        });
      }
      messages.push({role: "assistant", content: reply});
    } catch (error) {
      answer.classList.add("turn-error");
      answer.textContent = form.getAttribute("data-error") + " " + error.message;
      messages.pop();
    } finally {
      document.getElementById("pg-send").disabled = false;
    }
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
  document.getElementById("pg-clear").addEventListener("click", function () {
    messages = [];
    transcript.textContent = "";
  });
})();
