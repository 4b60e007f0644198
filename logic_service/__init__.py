"""logic_service"""
