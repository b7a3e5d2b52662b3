"""inspector_gui: the operator station window.

The GUI never inspects anything itself. One long-lived :class:`~inspector_gui.worker.StationWorker`
on its own ``QThread`` runs the station's one run loop (``core.station.loop.StationLoop``: it builds
the runtime on that thread, backs off and restarts, watches the source and raises alarms) and
forwards its events as Qt signals: each :class:`core.common.types.InspectedPart`, the source's
state, alarms raised and cleared. :class:`~inspector_gui.main_window.StationWindow` counts every part as it arrives but
repaints only the newest one on a timer (at most 15 Hz), so a fast line cannot flood the event
loop. :func:`~inspector_gui.app.run_station` wires both together and is what the console script
and the demo call.

Modules:
    worker: ``StationWorker`` (the loop's events as signals) and ``WorkerController`` (thread
        start and clean shutdown); the runtime it drives is ``core.station.loop.LoopRuntime``.
    main_window: ``StationWindow``, the operator's view.
    widgets: the painted building blocks (part view, verdict banner, score bar, history strip).
    theme: colours and the style sheet.
    app: ``run_station`` and the ``inspector-gui`` entry point ``main``.
"""
