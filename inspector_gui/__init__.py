"""inspector_gui: the operator station window.

The GUI never inspects anything itself. One long-lived :class:`~inspector_gui.worker.StationWorker`
on its own ``QThread`` builds the station runtime (source, model, database session, all made on
that thread), pulls parts through it and reports each :class:`core.common.types.InspectedPart` with a
Qt signal. :class:`~inspector_gui.main_window.StationWindow` counts every part as it arrives but
repaints only the newest one on a timer (at most 15 Hz), so a fast line cannot flood the event
loop. :func:`~inspector_gui.app.run_station` wires both together and is what the console script
and the demo call.

Modules:
    worker: ``RuntimeLike`` (the protocol the GUI codes against), ``StationInfo``,
        ``StationWorker`` and ``WorkerController`` (thread start and clean shutdown).
    main_window: ``StationWindow``, the operator's view.
    widgets: the painted building blocks (part view, verdict banner, score bar, history strip).
    theme: colours and the style sheet.
    app: ``run_station`` and the ``inspector-gui`` entry point ``main``.
"""
