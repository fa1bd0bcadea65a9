"""Send an image to a servekit (or TorchServe) prediction URL and print the answer.

Equivalent to: curl http://127.0.0.1:8080/predictions/densenet161 -T photo.jpg
The server's first request waits for the model to finish loading (requests queue meanwhile).
"""

import json
import sys
import urllib.request

url, path = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    request = urllib.request.Request(url, data=f.read(), method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
with urllib.request.urlopen(request, timeout=300) as response:
    answer = json.loads(response.read())
print(json.dumps(answer, indent=2))
