"""Great Expectations 1.x Expectation Suites in validate-data (``data.expectations``).

``suite``     read, check and write GE suite JSON files (standard library only)
``columns``   an Arrow column seen the way GE's pandas engine sees it
``fast``      the vectorised evaluator for the common expectation types (no GE import)
``gx``        every other expectation, through GE itself (imported only then)
``evaluate``  a suite on one dataset: fast first, GE for the rest; outcomes -> report checks
``infer``     a starting suite from the reference data (``--write-suite``)
"""
