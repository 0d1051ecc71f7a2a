// NDVI web map: one Leaflet polygon per district, restyled per view (latest, each year, change).
// District names and codes are untrusted: they only ever reach the page as DOM text (textContent, dataset).
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("ndvi-data").textContent);
  var decimals = data.decimals;
  var NO_DATA = "#cccccc";

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function isNumber(v) { return typeof v === "number" && isFinite(v); }
  function fmtNdvi(v) { return isNumber(v) ? v.toFixed(decimals) : "–"; }
  function fmtFraction(v) { return isNumber(v) ? (v * 100).toFixed(2) + " %" : "–"; }
  function fmtCount(v) { return isNumber(v) ? String(v) : "–"; }
  function fmtChange(v) { return isNumber(v) ? (v > 0 ? "+" : "") + v.toFixed(decimals) : "–"; }
  // Indicator values (selector, legend, popup series): NDVI as NDVI, shares as percent, changes and trends
  // signed; green-share changes in percentage points (pp).
  function fmtIndicator(field, v) {
    if (!isNumber(v)) return "–";
    var share = field.id.indexOf("green_share_") === 0;
    var sign = v > 0 ? "+" : "";
    if (field.kind === "share") return (v * 100).toFixed(2) + " %";
    if (field.kind === "change") return share ? sign + (v * 100).toFixed(2) + " pp" : sign + v.toFixed(decimals);
    if (field.kind === "trend") return share ? sign + (v * 100).toFixed(2) + " pp/yr" : sign + v.toFixed(4) + "/yr";
    return v.toFixed(decimals);
  }

  // Classes are computed in Python on full-precision values (see webmap_data.class_index).
  function colourFor(props, view) {
    if (view.kind === "indicator") {
      var icls = props.indicator_classes[view.indicator.id];
      return isNumber(icls) ? view.indicator.scale.colors[icls] : NO_DATA;
    }
    var cls = props.classes[view.id];
    var colors = view.kind === "change" ? data.change_scale.colors : data.ndvi_scale.colors;
    return isNumber(cls) ? colors[cls] : NO_DATA;
  }
  function scaleFor(view) {
    if (view.kind === "indicator") return view.indicator.scale;
    return view.kind === "change" ? data.change_scale : data.ndvi_scale;
  }

  var map = L.map("map", { preferCanvas: false, zoomSnap: 0.25 });
  map.attributionControl.setPrefix("Leaflet");
  var current = data.views[0];

  function styleFor(feature) {
    return { color: "#ffffff", weight: 1, opacity: 1, fillOpacity: 0.85,
             fillColor: colourFor(feature.properties, current) };
  }

  function popupContent(props) {
    var box = el("div", null, "ndvi-popup");
    box.appendChild(el("h3", props.district_name === null ? props.district_code : props.district_name, "name"));
    var facts = el("dl");
    [["Code", props.district_code, "code"],
     ["Latest values from", props.source_year === null ? "no year with valid pixels" : props.source_year,
      "source-year"]].concat(current.kind === "indicator"
      ? [[current.indicator.label, fmtIndicator(current.indicator, props.indicators[current.indicator.id]),
          "indicator-value"]] : []).forEach(function (fact) {
      facts.appendChild(el("dt", fact[0]));
      facts.appendChild(el("dd", fact[1], fact[2]));
    });
    box.appendChild(facts);
    var table = el("table");
    var head = el("tr");
    ["Year", "Mean", "Min", "Max", "Valid", "Pixels", "Change"].forEach(function (h) { head.appendChild(el("th", h)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    data.years.forEach(function (year) {
      var s = props.years[year] || {};
      var c = props.change[year] || {};
      var row = el("tr", null, String(props.source_year) === year ? "source-year" : "");
      row.dataset.year = year;
      [["mean_ndvi", fmtNdvi(s.mean_ndvi)], ["min_ndvi", fmtNdvi(s.min_ndvi)], ["max_ndvi", fmtNdvi(s.max_ndvi)],
       ["valid_fraction", fmtFraction(s.valid_fraction)], ["pixel_count", fmtCount(s.pixel_count)],
       ["mean_ndvi_change", fmtChange(c.mean_ndvi_change)]].forEach(function (cell, i) {
        if (i === 0) row.appendChild(el("th", year, "year"));
        row.appendChild(el("td", cell[1], cell[0]));
      });
      body.appendChild(row);
    });
    box.appendChild(table);
    // a second, narrow table keeps the popup clear of the map's controls: median, green shares and the
    // change of the mean against the baseline year, per year
    if (data.series_fields.length) {
      var series = el("table", null, "series");
      var shead = el("tr");
      shead.appendChild(el("th", "Year"));
      data.series_fields.forEach(function (f) { shead.appendChild(el("th", f.short)); });
      series.appendChild(el("thead")).appendChild(shead);
      var sbody = series.appendChild(el("tbody"));
      data.years.forEach(function (year) {
        var s = props.years[year] || {};
        var row = el("tr", null, String(props.source_year) === year ? "source-year" : "");
        row.dataset.year = year;
        row.appendChild(el("th", year, "year"));
        data.series_fields.forEach(function (f) { row.appendChild(el("td", fmtIndicator(f, s[f.id]), f.id)); });
        sbody.appendChild(row);
      });
      box.appendChild(series);
    }
    return box;
  }

  var districts = L.geoJSON(data.districts, {
    style: styleFor,
    onEachFeature: function (feature, layer) {
      var props = feature.properties;
      layer.bindPopup(function () { return popupContent(props); }, { maxWidth: 560 });
      layer.bindTooltip(function () {
        return el("span", props.district_name === null ? props.district_code : props.district_name);
      }, { sticky: true });
      layer.on("mouseover", function () { layer.setStyle({ weight: 3, color: "#333333" }); });
      layer.on("mouseout", function () { layer.setStyle({ weight: 1, color: "#ffffff" }); });
    }
  });
  // The map needs a view before its layers render (and get their SVG elements).
  if (data.districts.features.length) {
    map.fitBounds(districts.getBounds(), { padding: [10, 10] });
  } else {
    map.setView([0, 0], 2);
  }
  districts.addTo(map);
  districts.eachLayer(function (layer) {
    layer.getElement().dataset.districtCode = layer.feature.properties.district_code;
  });

  var legend = L.control({ position: "bottomright" });
  legend.onAdd = function () { this._div = el("div", null, "legend"); return this._div; };
  legend.update = function (view) {
    var box = this._div;
    box.replaceChildren(el("strong", view.label));
    var scale = scaleFor(view);
    scale.colors.forEach(function (colour, i) {
      var label;
      if (view.kind === "indicator") {
        var f = view.indicator;
        label = fmtIndicator(f, i === 0 ? scale.min : scale.bins[i - 1]) + " – " + fmtIndicator(f, scale.bins[i]);
      } else if (view.kind === "change") {
        if (i === 0) label = "≤ " + fmtChange(scale.bins[0]);
        else if (i === scale.bins.length) label = "> " + fmtChange(scale.bins[i - 1]);
        else label = fmtChange(scale.bins[i - 1]) + " to " + fmtChange(scale.bins[i]);
      } else {
        label = fmtNdvi(i === 0 ? scale.min : scale.bins[i - 1]) + " – " + fmtNdvi(scale.bins[i]);
      }
      var item = el("div", null, "legend-item");
      var swatch = el("i");
      swatch.style.background = colour;
      item.appendChild(swatch);
      item.appendChild(el("span", label));
      box.appendChild(item);
    });
    var none = el("div", null, "legend-item");
    var swatch = el("i");
    swatch.style.background = NO_DATA;
    none.appendChild(swatch);
    none.appendChild(el("span", view.kind === "change" ? "no previous year"
      : view.kind === "indicator" && view.indicator.kind !== "ndvi" && view.indicator.kind !== "share"
        ? "no value (see the popup)" : "no valid pixels"));
    box.appendChild(none);
    box.appendChild(el("small", view.kind === "change"
      ? "NDVI change from the previous year with valid pixels"
      : view.kind === "indicator"
        ? scale.scheme + ", k=" + scale.k + " (breaks.json indicators." + view.indicator.id + ", latest layer)"
        : data.ndvi_scale.scheme + ", k=" + data.ndvi_scale.k + " (breaks.json, latest mean NDVI)"));
  };
  legend.addTo(map);

  function showView(view) {
    current = view;
    districts.setStyle(styleFor);
    legend.update(view);
    map.getContainer().dataset.view = view.id;
    if (selector) selector.value = view.kind === "indicator" ? view.indicator.id : "";
  }

  // The indicator selector: mean, median, each green share, their change against the baseline year and
  // their trend, each on the latest layer with its own breaks (breaks.json "indicators").
  var selector = null;
  var indicatorViews = {};
  data.indicators.forEach(function (ind) {
    indicatorViews[ind.id] = { id: "indicator-" + ind.id, kind: "indicator", indicator: ind, label: ind.label };
  });
  function showIndicator(id) { showView(indicatorViews[id]); }
  if (data.indicators.length) {
    var picker = L.control({ position: "topleft" });
    picker.onAdd = function () {
      var box = el("div", null, "indicator-picker leaflet-bar");
      var label = el("label", "Indicator ");
      selector = el("select");
      selector.id = "indicator-select";
      selector.appendChild(el("option", "(map layer)")).value = "";
      data.indicators.forEach(function (ind) { selector.appendChild(el("option", ind.label)).value = ind.id; });
      selector.addEventListener("change", function () {
        if (selector.value) showIndicator(selector.value);
        else showView(data.views[0]);
      });
      label.appendChild(selector);
      box.appendChild(label);
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    picker.addTo(map);
  }

  // Views are empty layer groups in the layer control's radio list; choosing one restyles the districts.
  var baseLayers = {};
  var groups = {};
  data.views.forEach(function (view) {
    var group = L.layerGroup();
    group.view = view;
    groups[view.id] = group;
    baseLayers[view.label] = group;
  });
  var overlays = {};
  if (data.basemap_url) {
    var host = el("span", new URL(data.basemap_url.replace(/[{}]/g, "")).host).innerHTML;
    var tiles = L.tileLayer(data.basemap_url, { maxZoom: 19, attribution: "Basemap: " + host });
    tiles.addTo(map);
    tiles.bringToBack();
    overlays["Basemap"] = tiles;
  }
  groups[data.views[0].id].addTo(map);
  L.control.layers(baseLayers, overlays, { collapsed: false, position: "topright" }).addTo(map);
  map.on("baselayerchange", function (event) { showView(event.layer.view); });
  showView(data.views[0]);
  // For people and browser tests poking at the page from the console.
  window.ndviMap = { map: map, districts: districts, views: data.views, showView: showView,
                     indicators: data.indicators, showIndicator: showIndicator };
})();
