"""Test support: real S3 servers on 127.0.0.1 and storage targets for conformance suites."""
