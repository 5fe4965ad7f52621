"""The load test's machinery: the event it prepares, the Locust users that walk the guest's
journey, and the verdict of each stage. The root ``locustfile.py`` and
``test_performance_progressive.sh`` are its entry points."""
