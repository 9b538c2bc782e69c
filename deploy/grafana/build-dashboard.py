#!/usr/bin/env python3
# Builds deploy/grafana/novacron.json (Grafana dashboard, schema 39) from the metric names the
# node exports (src/observability/metrics.ts, src/cache/metrics.ts, prom-client default metrics
# with the novacron_process_ prefix). test/api/grafana-dashboard.test.ts checks every name used
# here against a live registry. Run: python3 deploy/grafana/build-dashboard.py
import json, os

DS = {"type": "prometheus", "uid": "${datasource}"}
panels = []
y = 0

def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "id": len(panels) + 1, "panels": []})
    y += 1

def panel(kind, title, targets, w=12, h=8, x=0, unit=None, desc="", extra=None):
    p = {
        "type": kind, "title": title, "description": desc, "datasource": DS, "id": len(panels) + 1,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)} for i, (e, l) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit or "short"}, "overrides": []},
        "options": {},
    }
    if extra: p.update(extra)
    panels.append(p)

N = 'node=~"$node"'
row("Boot and health")
panel("stat", "Boot to ready", [(f'novacron_boot_duration_seconds{{{N}}}', "{{node}}")], w=6, unit="s",
      desc="Time from boot start to ready (novacron_boot_duration_seconds)")
panel("table", "Component status", [(f'max by (node, component, status) (novacron_component_status{{{N}}} == 1)', "")], w=9, x=6,
      desc="Current health of each component: up, degraded or down (novacron_component_status)",
      extra={"options": {"showHeader": True}, "transformations": [{"id": "labelsToFields", "options": {"mode": "columns"}}]})
panel("bargauge", "Component start duration", [(f'novacron_boot_component_duration_seconds{{{N}}}', "{{component}} ({{phase}} L{{level}})")], w=9, x=15, unit="s",
      desc="How long each boot component took to start (novacron_boot_component_duration_seconds)",
      extra={"options": {"orientation": "horizontal", "displayMode": "gradient"}})
y += 8
panel("timeseries", "Components not up", [(f'sum by (node) (novacron_component_status{{{N}, status!="up"}})', "{{node}}")], w=24, h=6,
      desc="Number of components degraded or down")
y += 6
row("REST API")
panel("timeseries", "Requests per second by route", [(f'sum by (route, method) (rate(novacron_http_requests_total{{{N}}}[$__rate_interval]))', "{{method}} {{route}}")], unit="reqps")
panel("timeseries", "Errors per second by status", [(f'sum by (status) (rate(novacron_http_requests_total{{{N}, status=~"4..|5.."}}[$__rate_interval]))', "{{status}}")], x=12, unit="reqps",
      desc="401/403 are auth refusals; 5xx should stay at zero")
y += 8
panel("timeseries", "Request duration p50 / p99", [
    (f'histogram_quantile(0.5, sum by (le) (rate(novacron_http_request_duration_seconds_bucket{{{N}}}[$__rate_interval])))', "p50"),
    (f'histogram_quantile(0.99, sum by (le) (rate(novacron_http_request_duration_seconds_bucket{{{N}}}[$__rate_interval])))', "p99"),
], unit="s")
panel("timeseries", "Mean duration by route", [
    (f'sum by (route) (rate(novacron_http_request_duration_seconds_sum{{{N}}}[$__rate_interval])) / sum by (route) (rate(novacron_http_request_duration_seconds_count{{{N}}}[$__rate_interval]))', "{{route}}"),
], x=12, unit="s")
y += 8
row("Cache")
panel("timeseries", "Hit ratio", [
    (f'sum(rate(novacron_cache_hits_total{{{N}}}[$__rate_interval])) / (sum(rate(novacron_cache_hits_total{{{N}}}[$__rate_interval])) + sum(rate(novacron_cache_misses_total{{{N}}}[$__rate_interval])))', "hit ratio"),
], w=8, unit="percentunit")
panel("timeseries", "Hits and misses by backend", [
    (f'sum by (backend) (rate(novacron_cache_hits_total{{{N}}}[$__rate_interval]))', "hits {{backend}}"),
    (f'sum by (backend) (rate(novacron_cache_misses_total{{{N}}}[$__rate_interval]))', "misses {{backend}}"),
], w=8, x=8, unit="ops")
panel("state-timeline", "Serving backend", [(f'novacron_cache_backend{{{N}}} == 1', "{{backend}}")], w=8, x=16,
      desc="redis, or memory while Redis is unreachable (fallback_to_memory)")
y += 8
row("Process")
panel("timeseries", "CPU", [(f'rate(novacron_process_process_cpu_seconds_total{{{N}}}[$__rate_interval])', "{{node}}")], w=8, unit="percentunit")
panel("timeseries", "Memory", [
    (f'novacron_process_process_resident_memory_bytes{{{N}}}', "rss {{node}}"),
    (f'novacron_process_nodejs_heap_size_used_bytes{{{N}}}', "heap used {{node}}"),
], w=8, x=8, unit="bytes")
panel("timeseries", "Event loop lag p99", [(f'novacron_process_nodejs_eventloop_lag_p99_seconds{{{N}}}', "{{node}}")], w=8, x=16, unit="s")
y += 8

dashboard = {
    "title": "NovaCron node",
    "uid": "novacron-node",
    "tags": ["novacron"],
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "time": {"from": "now-1h", "to": "now"},
    "refresh": "30s",
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        {"name": "node", "type": "query", "datasource": DS, "query": "label_values(novacron_boot_duration_seconds, node)",
         "definition": "label_values(novacron_boot_duration_seconds, node)", "includeAll": True, "multi": True,
         "current": {"text": "All", "value": "$__all"}, "refresh": 2, "label": "Node"},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "novacron.json")
with open(out, "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
print(out)
