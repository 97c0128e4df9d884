"""The legacy estate: realistic legacy systems the demo and the tests run against."""
