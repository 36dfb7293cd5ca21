app_name = "reader_study"
urlpatterns: list = []
