"""The worker task template of the bounding-box job (Liquid + crowd-html-elements), and the label config.

Ground Truth renders the template for each task: ``task.input.taskObject`` is the image's S3 URI (made
readable to the worker by ``grant_read_access``) and ``task.input.labels`` the label category config's
labels, which is why the class list lives in one place (the settings) and reaches the UI only through the
label category file.
"""

from __future__ import annotations

import html
import json

TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-bounding-box
    name="boundingBox"
    src="{{{{ task.input.taskObject | grant_read_access }}}}"
    header="{title}"
    labels="{{{{ task.input.labels | to_json | escape }}}}"
  >
    <full-instructions header="How to box trays">
      <ol>
        <li>Draw one tight box around <strong>every packed tray</strong> in the bin being filled.</li>
        <li>Include a tray that is partly hidden (by a hand, the bin rim or the next bin) only if at least half
            of it is visible; the box covers the visible part.</li>
        <li>Do not box trays outside the bin, empty trays in a hand, tape, markers or paper.</li>
        <li>Black areas are masked on purpose (outside the counted region): ignore them.</li>
        <li>No tray in the image: submit without boxes.</li>
      </ol>
    </full-instructions>
    <short-instructions>
      <p>{description}</p>
      <p>Tight boxes; at least half visible; nothing in the black area.</p>
    </short-instructions>
  </crowd-bounding-box>
</crowd-form>
"""


def worker_template(title: str, description: str) -> str:
    return TEMPLATE.format(title=html.escape(title, quote=True), description=html.escape(description))


def label_category_config(classes: list[str]) -> str:
    """Ground Truth's label category configuration file (``document-version`` 2018-11-28)."""
    return json.dumps({"document-version": "2018-11-28", "labels": [{"label": c} for c in classes]}, indent=1)
