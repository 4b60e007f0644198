"""Who gets the CPU and the GIL: keeping requests fast while versions load.

Thread names, the idle-class load thread, one core for a load and the rest for
serving, pacing a load's Python work, batch-class helper threads and freezing the
heap after loads. Plain OS and interpreter mechanics: imports nothing else of
graph_service.
"""
