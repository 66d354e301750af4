"""The lifecycle inspector: an admin page that shows every session move on its machine's diagram, live.

``routes`` serves the page, its files and the admin-only reads; ``feed`` is
the live WebSocket feed of the store's transitions and refusals;
``refusals`` keeps refused events, which their rolled-back transactions do
not. The page's TypeScript lives in ``clients/typescript/inspector/`` and is
built into ``static/js/`` (docs/inspector.md).
"""
