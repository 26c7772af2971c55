from observability.process_id import install

install()  # before any metric is defined (observability/process_id.py)
