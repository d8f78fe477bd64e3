"""Run by the host's python3 inside a machine: threads, a lock, and a child process; prints what it saw as JSON."""

from __future__ import annotations

import json
import subprocess
import threading

results: list[int] = []
lock = threading.Lock()


def work(n: int) -> None:
    with lock:
        results.append(sum(range(n)))


threads = [threading.Thread(target=work, args=(1000 * i,)) for i in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
child = subprocess.run(["/bin/busybox", "echo", "child"], capture_output=True, check=False)
print(json.dumps({"threads": len(results), "sum": sum(results), "child": child.stdout.decode().strip()}))
