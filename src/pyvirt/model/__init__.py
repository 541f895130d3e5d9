"""Pure data and validation: the domain model and its libvirt XML codec.

No I/O here. Entry points: ``domain_xml.parse_domain_xml`` /
``format_domain_xml``, ``ids.normalize``, ``validate.validate_domain``,
``units.parse_size``, ``names.check_name``.
"""
