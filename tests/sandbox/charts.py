"""Helm charts for HelmRelease tests: write one to disk, package it the way `helm package` does.

Two ways to get a chart into an OCIRepository that a HelmRelease reads through `spec.chartRef`:

* `flux push artifact --path=<dir>` of a directory that *holds* the chart directory
  (`<dir>/<chart>/Chart.yaml`): source-controller extracts the Flux layer and re-archives it, and
  helm-controller loads that archive as a chart. The chart must sit one level down: Helm's archive
  loader drops the first path element of every entry.
* a Helm OCI chart (what `helm push` writes): config `application/vnd.cncf.helm.config.v1+json`,
  one layer `application/vnd.cncf.helm.chart.content.v1.tar+gzip` holding the packaged chart. The
  OCIRepository then needs `layerSelector: {mediaType: <that layer type>, operation: copy}`.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
# The OCIRepository layer selector for a Helm OCI chart: store the packaged chart as it is.
HELM_CHART_LAYER_SELECTOR = {"mediaType": HELM_CHART_LAYER_MEDIA_TYPE, "operation": "copy"}

CONFIGMAP_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-greeting
data:
  greeting: {{ .Values.greeting | quote }}
"""

# The API server refuses this object (a ConfigMap name must be a DNS subdomain): Helm renders it,
# the install fails at apply time with the API server's own message.
INVALID_CONFIGMAP_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: Not_A_Valid_Name
data:
  greeting: {{ .Values.greeting | quote }}
"""


@dataclass(frozen=True)
class Chart:
    """A chart written to disk: `directory` is `<parent>/<name>`."""

    name: str
    version: str
    directory: Path

    @property
    def parent(self) -> Path:
        """What `flux push artifact --path` must get: the directory that holds the chart."""
        return self.directory.parent


def write_chart(
    parent: Path,
    *,
    name: str = "mychart",
    version: str = "0.1.0",
    greeting: str = "hello",
    templates: Mapping[str, str] | None = None,
) -> Chart:
    """`<parent>/<name>/` with Chart.yaml, values.yaml and templates (a ConfigMap by default)."""
    directory = parent / name
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    chart_yaml = f'apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: "1.0"\ntype: application\n'
    (directory / "Chart.yaml").write_text(chart_yaml, encoding="utf-8")
    (directory / "values.yaml").write_text(f"greeting: {json.dumps(greeting)}\n", encoding="utf-8")
    for filename, text in (templates or {"cm.yaml": CONFIGMAP_TEMPLATE}).items():
        (directory / "templates" / filename).write_text(text, encoding="utf-8")
    return Chart(name, version, directory)


def package_chart(chart: Chart, destination: Path) -> Path:
    """`<name>-<version>.tgz` laid out as `helm package` lays it out: every entry under `<name>/`.

    Timestamps are zeroed so the same chart always packs to the same bytes (and digest).
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(p for p in chart.directory.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(f"{chart.name}/{path.relative_to(chart.directory).as_posix()}")
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    destination.mkdir(parents=True, exist_ok=True)
    package = destination / f"{chart.name}-{chart.version}.tgz"
    package.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return package


def helm_config(chart: Chart) -> str:
    """The OCI config blob Helm writes: the chart's metadata as JSON."""
    return json.dumps({"apiVersion": "v2", "name": chart.name, "version": chart.version, "appVersion": "1.0"})
