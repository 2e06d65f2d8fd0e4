"""The WebSocket protocol: one JSON object per message, ``{"type": ..., "id": n, ...}``.

From the page: ``configure {config}``, ``play``, ``pause``, ``step``, ``reset {seed?}``, ``neuron {layer, unit,
top?}``, ``edit {layer, unit, bias | weight + value}``, ``ablate {layer, unit, on}``, ``freeze {layer, unit, on}``,
``revive {layer, unit}``, ``explain {layer, unit, sample}``, ``diagnose``, ``try_fix``, ``save``, ``hello``. Each gets
one reply carrying the same ``id``: the result (``ok``, ``neuron``, ``ablated``, ``frozen``, ``explain``,
``diagnosis``, ``trial``, ``saved``, ``hello``) or ``{"type": "error", "message": ...}``. Besides the replies the
server sends ``data`` (the points and sizes of the set, after each rebuild), ``frame`` messages (metrics, heatmaps,
weights, flags), ``diagnosis`` messages (while training, at a bounded rate) and ``trial`` messages (a "try the fix"
running, then its result).

Nothing a message says can make the server read a file: ``save`` writes where the server was told to on the command
line, and data sets are chosen by name among those the server offers.
"""

from __future__ import annotations

import asyncio
import json

from .config import (
    ACTIVATION_NAMES,
    FEATURES,
    INIT_NAMES,
    MAX_BATCH,
    MAX_LAYERS,
    MAX_SAMPLES,
    MAX_UNITS,
    TOY_SETS,
    ProtocolError,
    parse_config,
)
from .trial import BUSY

COMMAND_TIMEOUT = 60.0  # seconds a command may wait for the training thread's next step boundary
TYPES = (
    "hello",
    "configure",
    "play",
    "pause",
    "step",
    "reset",
    "neuron",
    "edit",
    "ablate",
    "freeze",
    "revive",
    "explain",
    "diagnose",
    "try_fix",
    "save",
)


def _parse(text, data, max_bytes: int) -> dict:
    if text is None:
        raise ProtocolError("expected a text message holding a JSON object, got a binary message")
    if len(text) > max_bytes:
        raise ProtocolError(f"message too large: {len(text)} characters, at most {max_bytes}")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ProtocolError("message nested too deeply") from None
    except ValueError as e:
        raise ProtocolError(f"expected a JSON object: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    if obj.get("type") not in TYPES:
        raise ProtocolError(f"type: expected one of {', '.join(TYPES)}, got {str(obj.get('type'))[:40]!r}")
    return obj


def _id(obj):
    i = obj.get("id") if isinstance(obj, dict) else None
    return i if isinstance(i, int) and not isinstance(i, bool) and abs(i) < 2**53 else None


def options(session) -> dict:
    """What the page may choose: data sets, features, activations, optimizers, initialisers and the caps."""
    from ..optim import OPTIMIZERS

    return {
        "datasets": [*TOY_SETS, *session.datasets],
        "features": list(FEATURES),
        "activations": list(ACTIVATION_NAMES),
        "optimizers": sorted(OPTIMIZERS),
        "inits": list(INIT_NAMES),
        "caps": {"layers": MAX_LAYERS, "units": MAX_UNITS, "batch_size": MAX_BATCH, "samples": MAX_SAMPLES},
        "can_save": session.saver is not None,
        "can_try_fix": session.trier is not None,
    }


async def handle(session, text, data, max_bytes: int) -> dict:
    """The reply to one message (never raises for anything the page can send)."""
    obj = None
    try:
        obj = _parse(text, data, max_bytes)
        reply = await _dispatch(session, obj)
    except ProtocolError as e:
        reply = {"type": "error", "message": str(e)}
    except (TimeoutError, asyncio.TimeoutError):
        reply = {"type": "error", "message": "the training thread did not answer in time"}
    except Exception as e:  # a bug must cost one reply, not the server
        reply = {"type": "error", "message": f"internal error: {type(e).__name__}: {e}"}
    reply["id"] = _id(obj)
    return reply


async def _call(session, fn) -> dict:
    if session.trial.running:  # the worker is training the trial: say so now rather than after it
        raise ProtocolError(BUSY)
    result = await asyncio.wait_for(asyncio.wrap_future(session.submit(fn)), COMMAND_TIMEOUT)
    return result if isinstance(result, dict) and "type" in result else {"type": "ok", **(result or {})}


def _flag(obj: dict, name: str, default: bool) -> bool:
    v = obj.get(name, default)
    if not isinstance(v, bool):
        raise ProtocolError(f"{name}: expected true or false, got {str(v)[:40]!r}")
    return v


def _args(obj: dict, *names) -> list:
    return [obj.get(n) for n in names]


async def _dispatch(session, obj: dict) -> dict:
    kind = obj["type"]
    if kind == "hello":
        return {"type": "hello", "options": options(session), "config": session.config.to_dict()}
    if kind == "configure":
        cfg = parse_config(obj.get("config"), session.datasets)
        return await _call(session, lambda: session.configure(cfg))
    if kind in ("play", "pause"):
        session.play(kind == "play")
        return {"type": "ok", "playing": kind == "play"}
    if kind == "step":
        session.step()
        return {"type": "ok"}
    if kind == "reset":
        seed = obj.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31):
            raise ProtocolError(f"seed: expected an integer in [0, {2**31 - 1}], got {seed!r}")
        return await _call(session, lambda: session.reset(seed))
    if kind == "diagnose":
        return await _call(session, session.diagnose)
    if kind == "try_fix":
        return await _call(session, session.try_fix)
    layer, unit = _args(obj, "layer", "unit")
    if kind == "neuron":
        top = _flag(obj, "top", False)
        return await _call(session, lambda: session.neuron(layer, unit, top))
    if kind == "revive":
        return await _call(session, lambda: session.revive(layer, unit))
    if kind == "explain":
        sample = obj.get("sample")
        return await _call(session, lambda: session.explain(layer, unit, sample))
    if kind == "edit":
        bias, weight, value = _args(obj, "bias", "weight", "value")
        if bias is None and weight is None:
            raise ProtocolError("edit: give bias, or weight (an input index) and value")
        return await _call(session, lambda: session.edit(layer, unit, bias=bias, weight=weight, value=value))
    on = _flag(obj, "on", True)
    if kind == "ablate":
        return await _call(session, lambda: session.ablate(layer, unit, on))
    if kind == "freeze":
        return await _call(session, lambda: session.freeze(layer, unit, on))
    return await _call(session, session.save)
