"""The playground: a local web page to build a network, train it on real data, and watch and touch every neuron
while it learns (``neuronkit playground``).

- ``config``: the settings the page can change, checked against fixed caps.
- ``data``: the 2-D sets, digits, MNIST and a file from the command line, as model inputs.
- ``session``: one experiment trained by ``train.Trainer`` in a worker thread; commands run between steps.
- ``frames``: what the page draws (metrics, heatmaps, weights, flags, one neuron's details).
- ``insight``: revive a unit, explain a neuron's terms, the inputs that excite it most, the diagnosis: each by the
  library code the command line uses (``nn.Neuron.explain``, ``inspect.unit.view_unit``, ``inspect.diagnose``).
- ``trial``: "try the fix", the command line's ``diagnose --try-fix`` run between two steps, one at a time, bounded.
- ``server``: the Starlette app (token, Host and Origin checks, security headers, the WebSocket) and ``serve``.
- ``static/``: the page itself, plain HTML, CSS and JavaScript (no CDN, no build step).

Nothing in ``nn`` or ``train`` knows the playground exists: it drives the same ``fit`` loop, callbacks and probes as
``neuronkit train``.
"""

from .config import PlaygroundConfig, ProtocolError, parse_config
from .session import Session, Snapshot, build_model
