"""Drawing helpers shared by the report's sections: a matplotlib figure without a display, its PNG bytes, and
data URIs (the HTML report embeds everything, so it needs no network and no script)."""

from __future__ import annotations

import base64
import io
from typing import Any

DPI = 80


def figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` (Agg; matplotlib is the optional ``report`` extra)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # the optional extra
        raise ImportError("avsets report draws its charts with matplotlib: pip install 'avsets[report]'") from e

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def png(fig: Any) -> bytes:
    """The figure as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def data_uri(mime: str, data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
