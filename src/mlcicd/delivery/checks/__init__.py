"""The canary judge's checks, one module each; :mod:`mlcicd.delivery.analysis` combines them."""
