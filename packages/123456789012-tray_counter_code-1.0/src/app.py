"""Entry of the Panorama code node (``runtimeDescriptor.entry``: ``python3 /panorama/app.py``).

Everything lives in ``edge_app.panorama.node`` so that the appliance and ``edge-app panorama run-local``
run exactly the same code; ``panoramasdk`` is the appliance's module on the device and
``edge_app/panorama/local_sdk/panoramasdk.py`` on a laptop.
"""

from edge_app.panorama.node import main

if __name__ == "__main__":
    main()
