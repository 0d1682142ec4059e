/* The staff's tools on every landeco map page (api/templates/maps/map.html): find a feature
 * by code or name, change the map date, measure a distance or an area (on the ellipsoid, by
 * the server: GET /maps/measure), print what is shown (GET /maps.pdf?bbox=…&layers=…),
 * collapse the legend, and fall back to no basemap when its tiles cannot be reached.
 * Text from the server is inserted as text, never as HTML. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("landeco-map-config").textContent);
  var en = config.lang === "en";
  var words = en ? {
    noResult: "Nothing found", failed: "The server did not answer", length: "Distance",
    perimeter: "perimeter", area: "Area", mu: "mu", clickMore: "Click points on the map; click the button again to finish",
    finish: "Finish"
  } : {
    noResult: "未找到", failed: "服务器未响应", length: "距离", perimeter: "周长", area: "面积", mu: "亩",
    clickMore: "在地图上点击各点；再点按钮结束", finish: "结束"
  };
  var map = null;
  Object.keys(window).some(function (name) {
    if (name.indexOf("map_") === 0 && window[name] instanceof L.Map) { map = window[name]; return true; }
    return false;
  });
  if (!map) { return; }
  var root = document.documentElement;

  // -- the legend: collapsible; the map takes the room it leaves ----------------------------
  var panel = document.getElementById("landeco-legend-panel");
  var toggle = document.getElementById("legend-toggle");
  toggle.addEventListener("click", function () {
    var collapsed = panel.classList.toggle("collapsed");
    toggle.setAttribute("aria-expanded", String(!collapsed));
    toggle.textContent = toggle.textContent.replace(/[▾▸]$/, collapsed ? "▸" : "▾");
    map.invalidateSize();
  });

  // -- offline: no basemap rather than a grey grid of failed tiles --------------------------
  var notice = document.getElementById("basemap-notice");
  function basemapFailed() {
    var none = (window.landecoBasemaps || {}).none;
    if (!none || map.hasLayer(none)) { return; }
    Object.keys(window.landecoBasemaps).forEach(function (key) {
      var group = window.landecoBasemaps[key];
      if (key !== "none" && map.hasLayer(group)) { map.removeLayer(group); }
    });
    map.addLayer(none);  // the layer control's radio button follows
    notice.hidden = false;
    root.dataset.basemap = "none";
  }
  document.addEventListener("landeco:basemap-error", basemapFailed);
  if (window.landecoBasemapErrors) { basemapFailed(); }
  map.on("baselayerchange", function () { if (!map.hasLayer(window.landecoBasemaps.none)) { notice.hidden = true; } });

  // -- highlight: the feature clicked or found ---------------------------------------------
  var highlight = L.geoJSON(null, {
    interactive: false,
    style: function () { return {color: "#00e5ff", weight: 5, opacity: 0.95, fill: false}; }
  }).addTo(map);
  function select(feature) {
    highlight.clearLayers();
    if (feature) { highlight.addData(feature); highlight.bringToFront(); }
  }
  map.eachLayer(function (layer) {
    if (layer instanceof L.GeoJSON && layer !== highlight) {
      layer.on("click", function (e) {
        var clicked = e.propagatedFrom || e.layer;
        if (!measuring && clicked && clicked.feature) { select(clicked.feature); }
      });
    }
  });

  // -- find by code or name ---------------------------------------------------------------
  var form = document.getElementById("map-find");
  var input = document.getElementById("map-find-q");
  var list = document.getElementById("map-find-results");
  function show(result) {
    var b = result.bbox;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]], {maxZoom: 16, animate: false});
    select({type: "Feature", geometry: result.geometry, properties: {}});
    list.hidden = true;
    root.dataset.found = result.layer + ":" + result.id;
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var q = input.value.trim();
    if (!q) { return; }
    fetch(config.find + "?" + new URLSearchParams({q: q, lang: config.lang}))
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
      .then(function (answer) {
        list.textContent = "";
        if (!answer.results.length) {
          var li = document.createElement("li");
          li.textContent = words.noResult;
          list.appendChild(li);
        }
        answer.results.forEach(function (result) {
          var li = document.createElement("li");
          var button = document.createElement("button");
          button.type = "button";
          button.textContent = result.layer_title + " · " + (result.code || "") +
            (result.label ? "（" + result.label + "）" : "");
          button.addEventListener("click", function () { show(result); });
          li.appendChild(button);
          list.appendChild(li);
        });
        list.hidden = false;
        if (answer.results.length && answer.results[0].exact) { show(answer.results[0]); }
      })
      .catch(function () { list.textContent = words.failed; list.hidden = false; });
  });
  document.addEventListener("click", function (e) { if (!form.contains(e.target)) { list.hidden = true; } });

  // -- the map date -----------------------------------------------------------------------
  var dateInput = document.getElementById("map-date");
  if (dateInput) {
    dateInput.addEventListener("change", function () {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(dateInput.value)) { return; }
      var url = new URL(window.location.href);
      url.searchParams.set("on", dateInput.value);
      window.location.assign(url.toString());
    });
  }

  // -- measure: points clicked, length and area from the server ---------------------------
  var measuring = null;  // "distance" | "area" | null
  var points = [];
  var drawn = L.layerGroup().addTo(map);
  var result = document.getElementById("measure-result");
  var buttons = {distance: document.getElementById("measure-distance"),
                 area: document.getElementById("measure-area")};
  var labels = {distance: buttons.distance.textContent, area: buttons.area.textContent};
  function fmt(n, digits) {
    return n.toLocaleString(en ? "en" : "zh-CN", {minimumFractionDigits: digits, maximumFractionDigits: digits});
  }
  function redraw() {
    drawn.clearLayers();
    if (!points.length) { return; }
    var style = {color: "#ff00aa", weight: 3, dashArray: "6 4", interactive: false};
    if (measuring === "area" && points.length > 2) {
      L.polygon(points, L.extend({fillOpacity: 0.15}, style)).addTo(drawn);
    } else {
      L.polyline(points, style).addTo(drawn);
    }
    points.forEach(function (p) {
      L.circleMarker(p, {radius: 4, color: "#ff00aa", interactive: false}).addTo(drawn);
    });
  }
  function report() {
    var coords = points.map(function (p) { return p.lng.toFixed(7) + "," + p.lat.toFixed(7); }).join(";");
    fetch(config.measure + "?" + new URLSearchParams({coords: coords}))
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
      .then(function (m) {
        var text;
        if (measuring === "area" && m.area_m2 !== null) {
          text = words.area + " " + fmt(m.area_mu, 2) + " " + words.mu + "（" + fmt(m.area_m2, 0) + " m²，" +
            words.perimeter + " " + fmt(m.perimeter_m, 0) + " m）";
        } else {
          text = words.length + " " + (m.length_m >= 1000 ? fmt(m.length_m / 1000, 3) + " km" :
            fmt(m.length_m, 1) + " m");
        }
        result.textContent = text;
        result.dataset.lengthM = m.length_m;
        result.dataset.areaM2 = m.area_m2 === null ? "" : m.area_m2;
      })
      .catch(function () { result.textContent = words.failed; });
  }
  function stop() {
    Object.keys(buttons).forEach(function (k) {
      buttons[k].setAttribute("aria-pressed", "false");
      buttons[k].textContent = labels[k];
    });
    measuring = null;
    map.doubleClickZoom.enable();
    map.getContainer().classList.remove("landeco-measuring");
    map.getContainer().style.cursor = "";
  }
  Object.keys(buttons).forEach(function (kind) {
    buttons[kind].addEventListener("click", function () {
      if (measuring === kind) { stop(); return; }
      stop();
      measuring = kind;
      points = [];
      redraw();
      buttons[kind].setAttribute("aria-pressed", "true");
      buttons[kind].textContent = words.finish;
      result.textContent = words.clickMore;
      map.doubleClickZoom.disable();
      map.getContainer().classList.add("landeco-measuring");
      map.getContainer().style.cursor = "crosshair";
    });
  });
  document.getElementById("measure-clear").addEventListener("click", function () {
    stop();
    points = [];
    redraw();
    result.textContent = "";
  });
  map.on("click", function (e) {
    if (!measuring) { return; }
    points.push(e.latlng);
    redraw();
    if (points.length > 1) { report(); }
  });
  map.on("popupopen", function () { if (measuring) { map.closePopup(); } });

  // -- a feature's zonal statistics (GET …/items/{id}/zonal) as a small chart in its popup ----
  var FEATURE_PATH = /\/maps\/([a-z_]+)\/features\/(\d+)/;
  var SVG = "http://www.w3.org/2000/svg";
  var zonalWords = en ? {inside: "inside", ring: "ring", mean: "mean", title: "Zonal statistics (mean by date)"}
    : {inside: "区内", ring: "外围", mean: "均值", title: "分区统计（各期均值）"};
  function zonalUrl(el) {
    var found = null;
    el.querySelectorAll("a[href]").forEach(function (a) {
      var url = new URL(a.getAttribute("href"), window.location.href);
      if (!found && url.origin === window.location.origin && FEATURE_PATH.test(url.pathname)) { found = url; }
    });
    if (!found && FEATURE_PATH.test(window.location.pathname)) { found = new URL(window.location.href); }
    if (!found) { return null; }
    found.pathname = found.pathname.replace(FEATURE_PATH, "/collections/$1/items/$2/zonal");
    found.search = "?" + new URLSearchParams({lang: config.lang});
    return found.toString();
  }
  function svgNode(name, attrs) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    return node;
  }
  function zoneWord(zone) {
    return zone === "feature" ? zonalWords.inside : zonalWords.ring + " " + zone.replace(/^ring_/, "") + " m";
  }
  function sparkline(series) {  // every series of one kind: the feature's solid, its rings dashed
    var w = 220, h = 48, pad = 4, points = [];
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (typeof p.mean === "number") { points.push({t: Date.parse(p.acquired), v: p.mean}); }
      });
    });
    var svg = svgNode("svg", {width: w, height: h, viewBox: "0 0 " + w + " " + h, role: "img",
                              "class": "landeco-zonal-chart"});
    if (!points.length) { return svg; }
    var t0 = Math.min.apply(null, points.map(function (p) { return p.t; }));
    var t1 = Math.max.apply(null, points.map(function (p) { return p.t; }));
    var v0 = Math.min.apply(null, points.map(function (p) { return p.v; }));
    var v1 = Math.max.apply(null, points.map(function (p) { return p.v; }));
    if (v1 - v0 < 1e-9) { v0 -= 0.5; v1 += 0.5; }
    function x(t) { return t1 > t0 ? pad + (w - 2 * pad) * (t - t0) / (t1 - t0) : w / 2; }
    function y(v) { return h - pad - (h - 2 * pad) * (v - v0) / (v1 - v0); }
    series.forEach(function (s) {
      var ring = s.zone !== "feature";
      var xy = s.points.filter(function (p) { return typeof p.mean === "number"; })
        .map(function (p) { return [x(Date.parse(p.acquired)), y(p.mean), p]; });
      if (xy.length > 1) {
        svg.appendChild(svgNode("polyline", {
          points: xy.map(function (q) { return q[0].toFixed(1) + "," + q[1].toFixed(1); }).join(" "),
          fill: "none", stroke: ring ? "#888888" : "#1a9850", "stroke-width": 2,
          "stroke-dasharray": ring ? "4 3" : "none"}));
      }
      xy.forEach(function (q) {
        var dot = svgNode("circle", {cx: q[0].toFixed(1), cy: q[1].toFixed(1), r: 2.5,
                                     fill: ring ? "#888888" : "#1a9850"});
        var tip = document.createElementNS(SVG, "title");
        tip.textContent = q[2].acquired + " " + zoneWord(s.zone) + " " + zonalWords.mean + " " + q[2].mean.toFixed(3);
        dot.appendChild(tip);
        svg.appendChild(dot);
      });
    });
    return svg;
  }
  function zonalChart(answer) {
    var box = document.createElement("div");
    box.className = "landeco-zonal";
    var head = document.createElement("div");
    head.className = "landeco-zonal-title";
    head.textContent = zonalWords.title;
    box.appendChild(head);
    var kinds = [];
    answer.series.forEach(function (s) { if (kinds.indexOf(s.kind) < 0) { kinds.push(s.kind); } });
    kinds.forEach(function (kind) {
      var mine = answer.series.filter(function (s) { return s.kind === kind; });
      var caption = document.createElement("div");
      caption.className = "landeco-zonal-caption";
      caption.dataset.kind = kind;
      caption.textContent = mine[0].label + ": " + mine.map(function (s) {
        var last = s.points[s.points.length - 1];
        return zoneWord(s.zone) + " " + (typeof last.mean === "number" ? last.mean.toFixed(3) : "—") +
          " (" + last.acquired + ")";
      }).join("；");
      box.appendChild(caption);
      box.appendChild(sparkline(mine));
    });
    return box;
  }
  map.on("popupopen", function (e) {
    var el = e.popup.getElement();
    var content = el && el.querySelector(".leaflet-popup-content");
    var url = content && zonalUrl(content);
    if (!url || content.querySelector(".landeco-zonal")) { return; }
    fetch(url, {headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (!answer || !answer.series || !answer.series.length || !map.hasLayer(e.popup)) { return; }
        // the popup's content as one node, the chart after it (update() would re-render a string)
        var wrapper = document.createElement("div");
        while (content.firstChild) { wrapper.appendChild(content.firstChild); }
        wrapper.appendChild(zonalChart(answer));
        e.popup.setContent(wrapper);
        root.dataset.zonal = answer.layer + ":" + answer.feature_id;
      })
      .catch(function () { /* the popup stays as it was */ });
  });

  // -- print what is shown: the box on screen, the layers switched on, the date -------------
  var pdf = document.getElementById("print-pdf");
  var png = document.getElementById("print-png");
  function visibleLayers() {
    var keys = [];
    document.querySelectorAll(".landeco-legend-layer[data-key]").forEach(function (el) {
      if (el.style.display !== "none") { keys.push(el.dataset.key); }
    });
    return keys;
  }
  function printLinks() {
    var b = map.getBounds();
    var clamp = function (v, lim) { return Math.max(-lim, Math.min(lim, v)).toFixed(6); };
    var params = new URLSearchParams(config.print_params);
    if (b.getEast() - b.getWest() <= 5 && b.getNorth() - b.getSouth() <= 5) {  // else the map's own extent
      params.set("bbox", [clamp(b.getWest(), 180), clamp(b.getSouth(), 90), clamp(b.getEast(), 180),
                          clamp(b.getNorth(), 90)].join(","));
    }
    if (config.print_layers) { params.set("layers", visibleLayers().join(",")); }
    if (config.on) { params.set("on", config.on); }
    if (en) { params.set("lang", "en"); }
    pdf.href = config.print + ".pdf?" + params;
    png.href = config.print + ".png?" + params;
  }
  map.on("moveend overlayadd overlayremove", function () { setTimeout(printLinks, 0); });
  printLinks();
  root.dataset.tools = "ready";
})();
